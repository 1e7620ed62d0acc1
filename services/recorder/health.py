"""The recorder's storage problems: one error state per failing operation, until it works.

Issue 12: with the disk full, finalizing a stopped session failed on every
tick, and the retried group commit (with nothing to write) succeeded in
between and cleared the error: 25 log lines in 3 s, and the retained status
showed ``error: null`` between them. Now each failing operation (the group
commit, finalizing or rotating one session, the prediction log) holds its
problem until that same operation succeeds. A problem is logged when it
starts, then at most every :data:`RELOG_SECONDS` while it lasts, and once when
it clears; :attr:`Problems.error` (the status's ``error``) is the oldest
problem's first text, so it does not change while the problem lasts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RELOG_SECONDS = 60.0


@dataclass
class Problem:
    """One failing operation."""

    text: str  # as first seen: what the status shows
    since: float  # monotonic
    logged_at: float
    failures: int = 1


class Problems:
    """Failing operations by key (``commit``, ``finalize <session>``, ...)."""

    def __init__(self) -> None:
        self._open: dict[str, Problem] = {}

    @property
    def error(self) -> str | None:
        """The oldest problem's text, or None when everything works."""
        for problem in self._open.values():
            return problem.text
        return None

    def __contains__(self, key: str) -> bool:
        return key in self._open

    def __bool__(self) -> bool:
        return bool(self._open)

    def fail(self, key: str, text: str) -> bool:
        """Record a failure of ``key``; True if it is a new problem."""
        now = time.monotonic()
        problem = self._open.get(key)
        if problem is None:
            self._open[key] = Problem(text, now, now)
            logger.error("%s", text)
            return True
        problem.failures += 1
        if now - problem.logged_at >= RELOG_SECONDS:
            problem.logged_at = now
            logger.error(
                "still failing after %d attempts in %.0f s: %s",
                problem.failures,
                now - problem.since,
                text,
            )
        return False

    def clear(self, key: str) -> None:
        """``key`` worked: its problem (if any) is over."""
        problem = self._open.pop(key, None)
        if problem is not None:
            logger.info(
                "works again after %d failed attempts in %.0f s: %s",
                problem.failures,
                time.monotonic() - problem.since,
                problem.text,
            )
