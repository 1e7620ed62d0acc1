"""``python -m services.trainer``: same as ``har trainer``."""

from services.trainer.app import main

raise SystemExit(main())
