"""Logging set-up shared by every entry point."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO", name: str = "") -> None:
    """Log to stderr as ``time level [service] logger: message``."""
    prefix = f"[{name}] " if name else ""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
    )
