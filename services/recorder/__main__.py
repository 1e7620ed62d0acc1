"""``python -m services.recorder``: same as ``har recorder``."""

from services.recorder.app import main

raise SystemExit(main())
