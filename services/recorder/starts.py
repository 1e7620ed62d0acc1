"""Start commands that wait for their subscription before the recorder replies.

A start opens the session (durably), subscribes the device's raw frames and
replies "started" only when the broker's SUBACK has arrived: a client that
publishes after the reply has every frame recorded. A refused SUBACK (say, an
ACL) discards the session and replies an error.

A device that the recorder has not seen (no retained status from a gateway, no
prediction) is probed: its frames are subscribed and the session opens when its
first frame or status arrives, or the start is refused as an unknown device
after ``probe_seconds``. At most ``max_pending`` starts wait at once (a start
for a made-up device waits ``probe_seconds`` with a subscription of its own);
more are refused. Everything here runs on the service thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imu_har.protocol.commands import RecorderReply, StartRecording
from imu_har.runtime.inbox import Inbound
from services.recorder.core import CommandError, Recorder, unknown_device
from services.recorder.subscriptions import ImuSubscriptions

logger = logging.getLogger(__name__)

RESEND_SECONDS = 10.0  # no SUBACK this long after a SUBSCRIBE: send it again

ReplyFn = Callable[[Inbound, RecorderReply], None]


@dataclass
class PendingStart:
    """A start command waiting for its SUBACK (and, when probing, for its device)."""

    request: Inbound
    command: StartRecording
    request_id: str | None
    token: int
    probe_until: float | None = None  # monotonic; set while the device is unseen
    data: dict[str, Any] | None = None  # the open session, once it is open
    granted: bool = False
    sent_at: float | None = None  # monotonic time of the SUBSCRIBE; None: not sent yet
    connection: int = 0  # the connection it was sent on (its SUBACK is lost with it)

    @property
    def device(self) -> str:
        return self.command.device


class StartGate:
    """Pending start commands: subscribe, wait for the grant, then reply."""

    def __init__(
        self,
        core: Recorder,
        subs: ImuSubscriptions,
        reply: ReplyFn,
        probe_seconds: float,
        max_pending: int,
    ) -> None:
        self.core = core
        self.subs = subs
        self.reply = reply
        self.probe_seconds = probe_seconds
        self.max_pending = max_pending
        self.pending: dict[int, PendingStart] = {}

    def begin(self, message: Inbound, command: StartRecording, now: float) -> None:
        """Open the session (or start probing) and subscribe; raises :class:`CommandError`."""
        if len(self.pending) >= self.max_pending:
            self.core.counts["refused_too_many_pending_starts"] += 1
            raise CommandError(
                f"too many start commands waiting ({len(self.pending)}, "
                f"--max-pending-starts {self.max_pending}); try again in a few seconds"
            )
        request_id = _correlation(message)
        pending = PendingStart(message, command, request_id, self.subs.next_token())
        if self.probe_seconds > 0 and not self.core.is_known(command.device):
            self.core.check_start(command, known=False)
            pending.probe_until = time.monotonic() + self.probe_seconds
        else:
            pending.data = self.core.start(command, now, request_id)
        self.pending[pending.token] = pending
        self._send(pending)

    def _send(self, pending: PendingStart) -> None:
        pending.connection = self.subs.connection
        sent = self.subs.subscribe(pending.device, pending.token)
        pending.sent_at = time.monotonic() if sent else None

    def event(self, payload: bytes) -> None:
        """A SUBACK/UNSUBACK event from :class:`ImuSubscriptions`."""
        kind, token, refused = self.subs.event(payload)
        pending = self.pending.get(token) if kind == "sub" else None
        if pending is None:
            return
        if refused:
            topic = self.subs.topic(pending.device)
            self._fail(pending, f"the broker refused the subscription to {topic}: {refused}")
            return
        pending.granted = True
        self._finish(pending)

    def evidence(self, device: str) -> bool:
        """A frame or status of ``device`` arrived; True if a start was waiting for it."""
        waiting = [p for p in self.pending.values() if p.device == device and p.data is None]
        if waiting:
            self.core.note_device(device, time.time())
        for pending in waiting:
            try:
                pending.data = self.core.start(pending.command, time.time(), pending.request_id)
            except CommandError as exc:
                self._fail(pending, str(exc))
                continue
            self._finish(pending)
        return bool(waiting)

    def poll(self) -> None:
        """Keep subscriptions in step with the sessions; time out probes; resend lost requests."""
        self.subs.sync(set(self.core.by_device) | {p.device for p in self.pending.values()})
        self.subs.poll()
        now, connection = time.monotonic(), self.subs.connection
        connected = self.subs.runtime.connected.is_set()
        for pending in list(self.pending.values()):
            until = pending.probe_until
            if pending.data is None and until is not None and now >= until:  # device unseen
                self._fail(pending, unknown_device(pending.device))
                continue
            if pending.granted or not connected:
                continue
            sent_at = pending.sent_at
            unanswered = sent_at is None or now - sent_at >= RESEND_SECONDS
            if unanswered or pending.connection != connection:  # lost with a connection
                self._send(pending)

    def _finish(self, pending: PendingStart) -> None:
        if pending.granted and pending.data is not None:
            del self.pending[pending.token]
            self.reply(pending.request, RecorderReply(ok=True, action="start", data=pending.data))

    def _fail(self, pending: PendingStart, error: str) -> None:
        del self.pending[pending.token]
        if pending.data is not None and not pending.data.get("repeated"):
            self.core.discard(str(pending.data["session"]))
        logger.warning("start of %r failed: %s", pending.device, error)
        self.subs.runtime.counters.inc("command_errors")
        self.reply(pending.request, RecorderReply(ok=False, action="start", error=error))


def _correlation(message: Inbound) -> str | None:
    """The MQTT v5 correlation data of a command, hex (None if it has none)."""
    props = message.properties
    data = getattr(props, "CorrelationData", None) if props else None
    return bytes(data).hex() if data else None
