"""``python -m services.windower``: same as ``har windower``."""

from services.windower.app import main

raise SystemExit(main())
