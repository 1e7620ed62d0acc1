"""Per-phone request budget: a token bucket (``rate`` messages/s, bursts of ``2 x rate``)."""

from __future__ import annotations


class Bucket:
    """Allows ``rate`` takes per second on average and ``burst`` at once."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
