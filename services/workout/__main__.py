"""``python -m services.workout``: same as ``har workout``."""

from services.workout.app import main

raise SystemExit(main())
