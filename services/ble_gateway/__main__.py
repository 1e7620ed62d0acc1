"""``python -m services.ble_gateway``: same as ``har gateway``."""

from services.ble_gateway.app import main

raise SystemExit(main())
