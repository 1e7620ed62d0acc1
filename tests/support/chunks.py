"""Cutting a stream into uneven chunks, for the tests that check chunked output equals batch."""

from __future__ import annotations


def chunk_sizes(n: int, sizes: list[int]) -> list[int]:
    """``n`` cut into chunks of ``sizes`` in turn (the last one shorter if need be)."""
    out, i = [], 0
    while n > 0:
        k = min(n, sizes[i % len(sizes)])
        out.append(k)
        n -= k
        i += 1
    return out
