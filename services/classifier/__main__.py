"""``python -m services.classifier``: same as ``har classifier``."""

from services.classifier.app import main

raise SystemExit(main())
