"""``python -m services.homeassistant``: same as ``har homeassistant``."""

from services.homeassistant.app import main

raise SystemExit(main())
