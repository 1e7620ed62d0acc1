"""The one error type every decoder and validator raises on bad input."""

from __future__ import annotations


class PayloadError(ValueError):
    """A message, topic or name that cannot be accepted.

    ``reason`` is a short, stable slug (``truncated``, ``bad_version``,
    ``not_finite`` ...) used as the counter key on status topics; the message
    text is the human-readable explanation that goes to the log.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason}: {self.args[0]}"
