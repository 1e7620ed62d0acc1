"""``har recorder``: labelled Parquet recordings by command, and every prediction.

Subscribes with QoS 1 on a persistent MQTT v5 session (fixed client id,
``clean_start=False``, session expiry) and acknowledges each message only after
it is fsynced to a segment (see :mod:`services.recorder.store`), so neither a
``kill -9`` nor a broker restart loses a frame published with QoS 1. Raw frames
are subscribed per device, only while it is recorded
(:mod:`services.recorder.subscriptions`); a start is answered once that
subscription is granted (:mod:`services.recorder.starts`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.skeleton import serve
from services.recorder.core import Recorder
from services.recorder.handler import RecorderHandler
from services.recorder.segments import WriteFn
from services.recorder.settings import RecorderSettings

BATCH_WAIT = 0.002  # s to wait for more messages after the first: one fsync for them all


def build(
    settings: RecorderSettings, write: WriteFn = os.write
) -> tuple[ServiceRuntime, RecorderHandler]:
    """The runtime and handler for ``settings`` (main and the tests both use this).

    The runtime has the durable subscription the recorder needs: a fixed client
    id, a persistent session, manual acknowledgement, and an inbox that never
    sheds (QoS 1 input is acknowledged only once written, so the broker keeps
    what we have not taken). ``write`` is how bytes reach the disk (the tests
    pass a full disk).
    """
    settings = settings.model_copy(update={"client_id": settings.default_client_id()})
    runtime = ServiceRuntime(
        "recorder",
        settings,
        manual_ack=True,
        clean_start=False,
        session_expiry=settings.session_expiry,
        max_batch=settings.max_batch,
        batch_wait=BATCH_WAIT,
        queue_limit=None,
    )
    return runtime, RecorderHandler(settings, runtime, Recorder(settings, write))


def main(argv: Sequence[str] | None = None) -> int:
    """``har recorder``: labelled Parquet recordings by command."""
    description = "Record labelled sessions and predictions to Parquet."
    return serve("recorder", RecorderSettings, description, build, argv)
