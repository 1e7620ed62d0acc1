"""The bridge's pure core: the other services' messages in, Home Assistant's messages out.

No MQTT and no clock of its own: every call takes ``now`` (the receive time)
and returns the messages to publish as :data:`Out` tuples ``(topic, payload,
qos, retain)``, in order (a wearable's discovery before its state).

- A wearable appears (discovery, availability) with its first message and is
  forgotten after ``forget_after`` without news; then its discovery is removed
  (an empty retained payload) unless ``remove_forgotten`` is off. A retained
  message that was already that old when it arrived does not bring it back.
- Its state goes out when a value changes, at most ``max_state_rate`` times a
  second: a change inside the interval waits for :meth:`Bridge.tick`, and a
  change back to what was last sent sends nothing.
- Home Assistant's ``online`` schedules discovery and availability again after
  ``birth_delay``, and every state after another ``birth_delay`` (the time
  Home Assistant takes to set the entities up); so does a new discovery.

What is refused raises :class:`PayloadError` before anything changes
(``too_many_devices``, ``too_many_labels``, ``bad_label``, ``bad_status``);
events over ``max_event_rate`` are dropped and reported in :attr:`Bridge.refused`.
"""

from __future__ import annotations

import logging
from collections import Counter

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import DeviceStatus, Prediction
from imu_har.protocol.model_spec import ModelSpec
from imu_har.protocol.workout import RepEvent, SetEvent, WorkoutState, check_exercise
from services.homeassistant import discovery
from services.homeassistant.ids import node_id
from services.homeassistant.settings import HomeAssistantSettings
from services.homeassistant.wearable import Wearable, day_of, seen_at, source_of

logger = logging.getLogger(__name__)
SERVICE = "homeassistant"  # the service's name: its status topic is the bridge's availability
SWEEP_SECONDS = 1.0  # how often tick() looks at every wearable (stale links, forgetting, date)
Out = tuple[str, bytes, int, bool]


class Bridge:
    """Every wearable's Home Assistant view; no I/O."""

    def __init__(self, settings: HomeAssistantSettings) -> None:
        self.s = settings
        root, prefix = settings.topic_root, settings.discovery_prefix
        self.root, self.prefix = root, prefix
        self.wearables: dict[str, Wearable] = {}
        self.options = discovery.exercise_options(())
        self._offered = frozenset(self.options)
        self.labels_version = 0
        self.counts: Counter[str] = Counter()
        self.refused: list[tuple[str, str]] = []  # (reason, detail) for the runtime to count
        self._interval = 1.0 / settings.max_state_rate
        self._bridge_topic = topics.SERVICE_STATUS.format(root, service=SERVICE)
        self._state_topic = topics.HA_STATE.fast(root)
        self._event_topic = topics.HA_EVENT.fast(root)
        self._availability_topic = topics.HA_AVAILABILITY.fast(root)
        self._dirty: set[str] = set()
        self._rediscover_at: float | None = None
        self._next_sweep = 0.0
        self._today = ""

    # -- input -------------------------------------------------------------------------------
    def status(
        self, device: str, status: DeviceStatus | None, now: float, retained: bool
    ) -> list[Out]:
        """A device status (``None``: its retained status was cleared: the device is gone)."""
        out: list[Out] = []
        if status is None:
            w = self.wearables.get(device)
            if w is None:
                return out
            w.link, w.link_at = "disconnected", now
        else:
            seen = seen_at(now, status.updated_at, retained)
            w = self._wearable(device, seen, now, out, status)
            if w is None:
                return out
            w.link, w.link_at = status.state, seen
            if source_of(status) != w.source:
                w.source = source_of(status)
                out += self._discovery(w, now)
        out += self._availability(w, now)
        return out + self._changed(w, now)

    def prediction(self, p: Prediction, now: float) -> list[Out]:
        """A classified window: the exercise (smoothed label) and the classifier's confidence."""
        w, out = self._live(p.device, now)
        label = p.smoothed_label
        exercise = label if label in self._offered else "unknown"
        if exercise != label:
            self.counts["unknown_label"] += 1
        probability = min(1.0, max(0.0, p.probabilities.get(label, p.confidence)))
        step = self.s.confidence_step
        confidence = min(100, round(probability * 100 / step) * step)
        if exercise == w.exercise and confidence == w.confidence:
            return out
        w.exercise, w.confidence = exercise, confidence
        return out + self._changed(w, now)

    def workout(self, state: WorkoutState, now: float, retained: bool) -> list[Out]:
        """The workout service's retained state: the set under way and the day's totals."""
        out: list[Out] = []
        w = self._wearable(state.device, seen_at(now, state.updated_at, retained), now, out)
        if w is None:
            return out
        w.in_set = state.state == "set"
        w.reps = state.reps if w.in_set else 0
        w.totals_date = state.date
        w.totals_reps = sum(t.reps for t in state.totals.values())
        w.totals_sets = sum(t.sets for t in state.totals.values())
        return out + self._changed(w, now)

    def repetition(self, rep: RepEvent, now: float) -> list[Out]:
        """One repetition: its form, and an event."""
        w, out = self._live(rep.device, now)
        w.form = rep.form
        return out + self._event(w, discovery.repetition_event(rep), now) + self._changed(w, now)

    def finished_set(self, done: SetEvent, now: float) -> list[Out]:
        """A finished set: an event."""
        w, out = self._live(done.device, now)
        return out + self._event(w, discovery.set_event(done), now)

    def spec(self, spec: ModelSpec, now: float) -> list[Out]:
        """The served model: its labels become the exercise sensor's options."""
        if len(spec.labels) > self.s.max_labels:
            raise PayloadError(
                "too_many_labels", f"{len(spec.labels)} labels (at most {self.s.max_labels})"
            )
        for label in spec.labels:
            try:
                check_exercise(label)
            except ValueError:
                raise PayloadError(
                    "bad_label", f"label {label[:80]!r} is not an exercise name"
                ) from None
        options = discovery.exercise_options(spec.labels)
        if options == self.options:
            return []
        self.options, self._offered = options, frozenset(options)
        self.labels_version += 1
        logger.info("exercise options from model %r: %s", spec.name, ", ".join(options))
        out: list[Out] = []
        for w in self.wearables.values():
            if w.exercise not in self._offered:
                w.exercise = "unknown"
            out += self._discovery(w, now)
        return out

    def home_assistant(self, payload: bytes, now: float) -> list[Out]:
        """Home Assistant's status: ``online`` (it started) schedules discovery again."""
        if payload == b"online":
            self.counts["home_assistant_online"] += 1
            self._rediscover_at = now + self.s.birth_delay
        elif payload == b"offline":
            self.counts["home_assistant_offline"] += 1
        elif payload:
            raise PayloadError("bad_status", f"Home Assistant status {payload[:80]!r}")
        return []

    # -- time ---------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Out]:
        """Due work: rediscovery after Home Assistant's birth, rate-limited states, the sweep."""
        out: list[Out] = []
        if self._rediscover_at is not None and now >= self._rediscover_at:
            self._rediscover_at = None
            for w in self.wearables.values():
                out += self._discovery(w, now, force=True) + self._availability(w, now, force=True)
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            out += self._sweep(now)
        for device in [d for d in self._dirty if self.wearables[d].next_state_at <= now]:
            self._dirty.discard(device)
            out += self._send_state(self.wearables[device], now)
        return out

    def _sweep(self, now: float) -> list[Out]:
        out: list[Out] = []
        today = day_of(now)
        new_day, self._today = today != self._today, today
        for device, w in list(self.wearables.items()):
            if now - w.last_seen > self.s.forget_after:
                out += self._forget(w)
                continue
            changed = self._availability(w, now)  # a link gone stale reads disconnected
            if changed:
                out += changed
                self._dirty.add(device)
            if new_day or (w.resend_at is not None and now >= w.resend_at):
                w.resend_at, w.sent_state = None, b""
                self._dirty.add(device)
        return out

    # -- wearables ----------------------------------------------------------------------------
    def _wearable(
        self,
        device: str,
        seen: float,
        now: float,
        out: list[Out],
        status: DeviceStatus | None = None,
    ) -> Wearable | None:
        w = self.wearables.get(device)
        if w is not None:
            w.last_seen = max(w.last_seen, seen)
            return w
        if now - seen > self.s.forget_after:
            # retained news of a wearable forgotten while we were away: keep it removed
            self.counts["stale_retained"] += 1
            if self.s.remove_forgotten:
                self._removal(device, out)
            return None
        if len(self.wearables) >= self.s.max_wearables:
            raise PayloadError("too_many_devices", f"{self.s.max_wearables} wearables already")
        w = self.wearables[device] = Wearable(device, node_id(self.root, device), seen)
        if status is not None:  # announced as it is, not as disconnected first
            w.source, w.link, w.link_at = source_of(status), status.state, seen
        w.event_tokens, w.event_at = max(1.0, self.s.max_event_rate), now
        logger.info("wearable %r appears in Home Assistant as %s", device, w.node)
        self.counts["wearables_added"] += 1
        out += self._discovery(w, now) + self._availability(w, now)
        return w

    def _live(self, device: str, now: float) -> tuple[Wearable, list[Out]]:
        """The wearable of a live message (made now), and its discovery if it is new."""
        out: list[Out] = []
        w = self._wearable(device, now, now, out)
        assert w is not None  # news made now is never too old
        return w, out

    def _removal(self, device: str, out: list[Out]) -> None:
        node = node_id(self.root, device)
        out.append((topics.HA_DISCOVERY.format(self.prefix, node=node), b"", 1, True))
        out.append((self._availability_topic(device), b"", 1, True))

    def _forget(self, w: Wearable) -> list[Out]:
        del self.wearables[w.device]
        self._dirty.discard(w.device)
        self.counts["wearables_forgotten"] += 1
        logger.info("wearable %r forgotten after %g s without news", w.device, self.s.forget_after)
        out: list[Out] = []
        if self.s.remove_forgotten:
            self._removal(w.device, out)
        else:
            out.append((self._availability_topic(w.device), b"offline", 1, True))
        return out

    # -- output -------------------------------------------------------------------------------
    def _discovery(self, w: Wearable, now: float, force: bool = False) -> list[Out]:
        key = (self.labels_version, w.source)
        if w.discovered == key and not force:
            return []
        w.discovered, w.resend_at = key, now + self.s.birth_delay
        wearable_topics = discovery.Topics(
            state=self._state_topic(w.device),
            event=self._event_topic(w.device),
            availability=self._availability_topic(w.device),
            bridge=self._bridge_topic,
        )
        message = discovery.payload(w.node, w.device, w.model(), self.options, wearable_topics)
        self.counts["discovery_published"] += 1
        topic = topics.HA_DISCOVERY.format(self.prefix, node=w.node)
        return [(topic, discovery.encode(message), 1, True)]

    def _availability(self, w: Wearable, now: float, force: bool = False) -> list[Out]:
        available = w.available(now, self.s.link_timeout)
        if available == w.sent_available and not force:
            return []
        w.sent_available = available
        return [
            (self._availability_topic(w.device), b"online" if available else b"offline", 1, True)
        ]

    def _changed(self, w: Wearable, now: float) -> list[Out]:
        if now >= w.next_state_at:
            self._dirty.discard(w.device)
            return self._send_state(w, now)
        self._dirty.add(w.device)
        return []

    def _send_state(self, w: Wearable, now: float) -> list[Out]:
        if not self._today:
            self._today = day_of(now)
        payload = discovery.encode(w.state(now, self._today, self.s.link_timeout))
        if payload == w.sent_state:
            self.counts["state_unchanged"] += 1
            return []
        w.sent_state, w.next_state_at = payload, now + self._interval
        self.counts["state_published"] += 1
        return [(self._state_topic(w.device), payload, 0, False)]

    def _event(self, w: Wearable, event: dict[str, object], now: float) -> list[Out]:
        if not w.take_event(now, self.s.max_event_rate):
            self.refused.append(
                ("event_rate", f"{w.device!r}: over {self.s.max_event_rate:g} events/s")
            )
            return []
        self.counts["events_published"] += 1
        return [(self._event_topic(w.device), discovery.encode(event), 1, False)]
