"""Per-device sample timelines: when each sample of a frame was taken, in Unix seconds.

Used by the live windower and by the recorder (which stores these times), so
training resamples exactly as the live windower does.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

RESYNC_SECONDS = 5.0  # device clock drifting this far from receive time re-anchors it


# Shared by every clock and bounded (issue 12.4): each clock used to keep its own step
# array per (n, rate), and 10,000 frames with distinct rates grew the windower by 81 MB.
# 256 entries of at most 1,024 float64 are at most 2 MiB; a device keeps one or two.
@lru_cache(maxsize=256)
def _steps(n: int, rate: float) -> np.ndarray:
    """``i / rate`` for ``i`` in ``0..n-1`` (read-only: every clock shares it)."""
    steps = np.arange(n, dtype=np.float64) / rate
    steps.flags.writeable = False
    return steps


class DeviceClock:
    """Per-device timeline: the time of every sample of a frame, in Unix seconds.

    With a device timestamp, samples sit at ``device_time + i / rate`` shifted by
    an offset that anchors the device clock to the receive time of the first
    frame (re-anchored when the two drift ``RESYNC_SECONDS`` apart, e.g. after a
    device reboot). Without one, the last sample is taken to arrive at the
    receive time and earlier ones ``1 / rate`` apart before it. The recorder
    stores these times, so training resamples exactly as the live windower does.
    """

    def __init__(self) -> None:
        self.offset: float | None = None
        self.resyncs = 0

    def sample_times(
        self, n: int, rate: float, receive_time: float, device_time: float | None
    ) -> np.ndarray:
        """Times of ``n`` samples of one frame."""
        steps = _steps(n, rate)
        if device_time is None:
            return receive_time - steps[::-1]
        last_device = device_time + steps[-1]
        if self.offset is None or abs(last_device + self.offset - receive_time) > RESYNC_SECONDS:
            if self.offset is not None:
                self.resyncs += 1
            self.offset = receive_time - last_device
        return device_time + self.offset + steps
