"""``python -m services.dashboard``: same as ``har dashboard``."""

from services.dashboard.app import main

raise SystemExit(main())
