"""The phones the gateway serves: who they are, their batches in order, their frames published.

Every way in (the app over MQTT, its HTTP push, the phone page's WebSocket) ends
in :meth:`PhoneHub.ingest`: the message is parsed (:mod:`schema`) before the
hub's lock is taken, the phone is found or registered (at most ``max_phones``;
each one a :class:`~services.ble_gateway.link.DeviceLink` with ``source``
``phone``), its request budget is charged, the batch is put in order
(:mod:`order`) and aligned (:mod:`align`), and the frames are published
through the core. Every refusal raises :class:`PayloadError` (the caller counts
it) and changes nothing else. Idle phones are forgotten after ``idle_timeout``.

Thread-safe: the MQTT thread and the asyncio thread both call in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import validate_device_id
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.link import DeviceLink
from services.ble_gateway.phone import schema
from services.ble_gateway.phone.align import DEFAULT_RATE, Aligned, PhoneTimeline
from services.ble_gateway.phone.limits import Bucket
from services.ble_gateway.phone.names import phone_device_id
from services.ble_gateway.phone.order import BatchOrder
from services.ble_gateway.phone.schema import PhoneBatch

logger = logging.getLogger(__name__)

Sender = Callable[[bytes], None]  # hands a prediction to a page's WebSocket (any thread)
MAX_HELD = 8  # batches one phone may have waiting for an earlier one


@dataclass(frozen=True)
class PhoneConfig:
    """The part of the gateway settings the hub works with."""

    max_phones: int
    max_bytes: int
    rate_limit: float  # messages/s per phone
    reorder_seconds: float
    idle_timeout: float
    ios_native: bool = False
    renames: dict[str, str] = field(default_factory=dict)


@dataclass
class Phone:
    """One phone: its link, order, timeline, budget and (page) prediction sender."""

    link: DeviceLink
    order: BatchOrder
    timeline: PhoneTimeline
    budget: Bucket
    last_seen: float
    sender: Sender | None = None
    layout: bool = False  # its frames' channels are known


class PhoneHub:
    """Registers phones (bounded), orders and aligns their batches, publishes their frames."""

    def __init__(self, core: GatewayCore, config: PhoneConfig) -> None:
        self.core, self.config = core, config
        self.lock = threading.Lock()
        self.phones: dict[str, Phone] = {}
        self.model: tuple[str, tuple[str, ...]] | None = None  # served model: name, channels

    def device_of(self, raw: str, authenticated: str | None = None) -> str:
        """The device id: an authenticated topic level as it is, else the safe-name rule."""
        if authenticated is not None:
            return self.config.renames.get(validate_device_id(authenticated), authenticated)
        return phone_device_id(raw, self.config.renames)

    def ingest(
        self,
        payload: bytes,
        received_at: float,
        now: float,
        *,
        via: str,
        authenticated: str | None = None,
        device: str | None = None,
    ) -> str:
        """One message of a phone; returns its device id. Raises :class:`PayloadError`.

        ``device`` is a page's own id (its WebSocket is bound to it);
        ``authenticated`` a broker user name from the topic; otherwise the
        message's ``deviceId`` names the phone.
        """
        batch = schema.parse(payload, self.config.max_bytes)
        if device is None:
            device = self.device_of(batch.device_id, authenticated)
        with self.lock:
            phone = self._phone(device, via, now)
            if not phone.budget.take(now):
                raise PayloadError(
                    "rate_limited", f"{device}: over {self.config.rate_limit:g} messages/s"
                )
            phone.last_seen = now
            ready, new_session = phone.order.push(batch, now)
            if new_session:
                phone.timeline.reset()
            for ordered in ready:
                self._publish(phone, ordered, received_at)
            self._count(phone)
        return device

    def attach(self, device: str, sender: Sender, now: float) -> None:
        """A page connected as ``device``: register it and forward its predictions to it."""
        with self.lock:
            phone = self._phone(device, "page", now)
            phone.sender, phone.last_seen = sender, now
            self.core.set_state(phone.link, "connected")

    def detach(self, device: str, sender: Sender) -> None:
        """The page's WebSocket closed."""
        with self.lock:
            phone = self.phones.get(device)
            if phone is not None and phone.sender is sender:
                phone.sender = None
                self.core.set_state(phone.link, "disconnected")

    def prediction(self, device: str, payload: bytes) -> bool:
        """Forward a prediction to the page of ``device``, if one is connected."""
        with self.lock:
            phone = self.phones.get(device)
            sender = phone.sender if phone is not None else None
        if sender is None:
            return False
        sender(payload)
        return True

    def set_model(self, name: str, channels: tuple[str, ...]) -> None:
        """The classifier serves a model with these channels: tell phones that lack some."""
        with self.lock:
            self.model = (name, channels)
            for phone in self.phones.values():
                self._check_model(phone)

    def tick(self, now: float, received_at: float) -> list[str]:
        """Publish batches whose wait is over; forget idle phones (returned)."""
        idle = []
        with self.lock:
            for device, phone in list(self.phones.items()):
                for batch in phone.order.due(now):
                    self._publish(phone, batch, received_at)
                self._count(phone)
                if phone.sender is None and now - phone.last_seen > self.config.idle_timeout:
                    idle.append(device)
            for device in idle:
                phone = self.phones.pop(device)
                self.core.set_state(phone.link, "disconnected", error="idle")
                self.core.remove(device)
        return idle

    def devices(self) -> list[str]:
        """Phones currently served."""
        with self.lock:
            return list(self.phones)

    def _phone(self, device: str, via: str, now: float) -> Phone:
        phone = self.phones.get(device)
        if phone is not None:
            return phone
        if len(self.phones) >= self.config.max_phones:
            raise PayloadError(
                "too_many_devices", f"{device!r}: already {self.config.max_phones} phones"
            )
        link = self.core.add(DeviceLink(device, rate=DEFAULT_RATE, source="phone", address=via))
        c = self.config
        phone = Phone(
            link,
            BatchOrder(c.reorder_seconds, MAX_HELD),
            PhoneTimeline(ios_native=c.ios_native),
            Bucket(c.rate_limit, 2 * c.rate_limit, now),
            now,
        )
        self.phones[device] = phone
        logger.info("phone %s joined (%s)", device, via)
        return phone

    def _publish(self, phone: Phone, batch: PhoneBatch, received_at: float) -> None:
        aligned = phone.timeline.push(batch)
        if aligned is None:
            return
        link = phone.link
        if not phone.layout or (aligned.channels, aligned.units) != (link.channels, link.units):
            self._layout(phone, aligned)
        link.extra["acceleration"] = aligned.acceleration
        for piece in aligned.pieces:
            self.core.publish_samples(
                link, piece.samples, received_at, piece.device_time, rate=piece.rate
            )

    def _layout(self, phone: Phone, aligned: Aligned) -> None:
        link = phone.link
        link.channels, link.units = aligned.channels, aligned.units
        phone.layout = True
        self._check_model(phone)
        self.core.publish_status(link)

    def _check_model(self, phone: Phone) -> None:
        link = phone.link
        if self.model is None or not phone.layout:
            return
        name, wanted = self.model
        missing = [c for c in wanted if c not in link.channels]
        if missing:
            link.error = (
                f"model {name!r} needs {', '.join(missing)}, which this phone does not send "
                "(the windower refuses its frames: channel_mismatch)"
            )
        elif link.error and link.error.startswith("model "):
            link.error = None

    @staticmethod
    def _count(phone: Phone) -> None:
        order, link = phone.order, phone.link
        link.seq.lost = order.lost
        link.extra.update(duplicates=order.duplicates, reordered=order.reordered, late=order.late)
