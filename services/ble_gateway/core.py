"""Decode-and-publish core of the gateway, shared by the BLE, sim and replay sources.

Pure logic around a ``publish(topic, payload, qos, retain)`` callable: a packet
of one device is decoded (:mod:`packets`), turned into a raw :class:`Frame`
(per-device frame seq, device time when the packet had one, receive time
always) and published on ``<root>/<device>/imu``. Each device's link state and
counters become its retained :class:`DeviceStatus`, published when the state
changes and every status interval otherwise.

The core serves at most ``--max-devices`` wearables (every per-device structure
of the gateway is a link here, or is bounded by the links); a bad input is
counted through ``reject`` and the other devices keep streaming.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import DeviceState, GroundTruth
from services.ble_gateway.link import DeviceLink

if TYPE_CHECKING:
    from services.ble_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], Any]
PublishMany = Callable[[list[tuple[str, bytes]]], None]
Reject = Callable[[str, str], None]


class GatewayCore:
    """Devices, their frames, statuses and ground truth, published through ``publish``."""

    def __init__(
        self,
        publish: Publish,
        settings: GatewaySettings,
        *,
        reject: Reject | None = None,
        publish_many: PublishMany | None = None,
    ) -> None:
        self.publish = publish
        self.publish_many = publish_many
        self._held: list[tuple[str, bytes]] | None = None
        self.root = settings.topic_root
        self.qos = settings.qos
        self.status_interval = settings.status_interval
        self.max_devices = settings.max_devices
        self.reject = reject or (lambda reason, text: logger.warning("%s: %s", reason, text))
        self.links: dict[str, DeviceLink] = {}
        self._status_due = 0.0
        # Device ids are validated once, in add(); the hot paths only concatenate.
        self._imu_topic = topics.IMU.fast(self.root)
        self._status_topic = topics.DEVICE_STATUS.fast(self.root)
        self._truth_topic = topics.GROUND_TRUTH.fast(self.root)

    def add(self, link: DeviceLink) -> DeviceLink:
        """Register a device: its id must be valid and new, and there must be room for it.

        Raises :class:`PayloadError` (``bad_device``, ``too_many_devices``) or
        ``ValueError`` for an id registered twice.
        """
        topics.validate_device_id(link.device)
        if link.device in self.links:
            raise ValueError(f"device {link.device!r} is registered twice")
        if len(self.links) >= self.max_devices:
            raise PayloadError(
                "too_many_devices", f"{link.device!r}: already {self.max_devices} devices"
            )
        self.links[link.device] = link
        return link

    def remove(self, device: str) -> DeviceLink | None:
        """Forget a device (an idle phone); its retained status stays as last published."""
        return self.links.pop(device, None)

    def on_packet(self, device: str, data: bytes, received_at: float) -> bool:
        """Decode and publish one packet; a bad one is counted, logged and dropped."""
        link = self.links.get(device)
        if link is None:
            self.reject("unknown_device", f"packet from unregistered device {device!r}")
            return False
        try:
            frame = link.to_frame(data, received_at)
            payload = encode_frame(frame) if frame is not None else b""
        except PayloadError as exc:
            link.decode_errors += 1
            link.error = f"bad packet ({exc.reason}): {exc.args[0]}"
            self.reject(exc.reason, f"{device}: {exc.args[0]}")
            return False
        if frame is None:
            self.reject("duplicate", f"{device}: repeated packet sequence number")
            return False
        if link.state != "streaming":
            link.error = None
            self.set_state(link, "streaming")
        self._send(device, payload)
        return True

    def publish_frame(self, frame: Frame) -> None:
        """Publish a raw frame on its device's imu topic (held while inside :meth:`batch`).

        Raises :class:`PayloadError` for a frame that is not valid.
        """
        self._send(frame.device, encode_frame(frame))

    def _send(self, device: str, payload: bytes) -> None:
        topic = self._imu_topic(device)
        if self._held is not None:
            self._held.append((topic, payload))
        else:
            self.publish(topic, payload, self.qos, False)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Frames published inside leave together at the end: one socket write, not one each.

        Only at QoS 0 and with ``publish_many``; otherwise frames go out one by one.
        """
        if self.publish_many is None or self.qos or self._held is not None:
            yield
            return
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self.publish_many(held)

    def publish_samples(
        self,
        link: DeviceLink,
        samples: np.ndarray,
        received_at: float,
        device_time: float | None,
        rate: float | None = None,
    ) -> bool:
        """Publish float samples that did not come as a packet (replay, phones).

        The frame has the link's channels and units, and ``rate`` (default the
        link's); a bad frame is counted.
        """
        frame = Frame(
            device=link.device,
            seq=link.frames & 0xFFFFFFFF,
            receive_time=received_at,
            rate=link.rate if rate is None else rate,
            samples=np.asarray(samples, dtype=np.float32),
            device_time=device_time,
            channels=link.channels,
            units=link.units,
        )
        try:
            payload = encode_frame(frame)
        except PayloadError as exc:
            link.decode_errors += 1
            self.reject(exc.reason, f"{link.device}: {exc.args[0]}")
            return False
        link.frames += 1
        link.samples += len(frame.samples)
        link.last_data = time.monotonic()
        if link.state != "streaming":
            self.set_state(link, "streaming")
        self._send(link.device, payload)
        return True

    def set_state(
        self, link: DeviceLink, state: DeviceState, error: str | None = None, **fields: Any
    ) -> None:
        """Change a device's state (and error); publishes its status right away."""
        changed = link.state != state or (error is not None and error != link.error)
        link.state = state
        if error is not None:
            link.error = error
        for name, value in fields.items():
            setattr(link, name, value)
        if changed:
            logger.info(
                "%s: %s%s", link.device, state, f" ({link.error})" if error is not None else ""
            )
            self.publish_status(link)

    def publish_status(self, link: DeviceLink) -> None:
        """Publish one device's retained status now."""
        status = link.status(time.monotonic())
        self.publish(self._status_topic(link.device), status.to_payload(), 1, True)

    def publish_statuses(self, now: float, force: bool = False) -> None:
        """Publish every device's status when the status interval has passed (monotonic now)."""
        if not force and now < self._status_due:
            return
        self._status_due = now + self.status_interval
        for link in list(self.links.values()):
            self.publish_status(link)

    def publish_truth(
        self, device: str, label: str, rep: int, at: float, until: float | None = None
    ) -> bool:
        """Publish retained ground truth of a registered simulated or replayed device.

        The sources publish at most one per notification of a device (its
        rate is bounded by the device's packets); a bad one is counted.
        """
        if device not in self.links:
            self.reject("unknown_device", f"ground truth of unregistered device {device!r}")
            return False
        try:
            truth = GroundTruth(device=device, label=label, rep=rep, time=at, until=until)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self.reject("bad_truth", f"{device}: ground truth {label!r}: {exc}")
            return False
        self.publish(self._truth_topic(device), truth.to_payload(), 1, True)
        return True

    def summary(self) -> dict[str, Any]:
        """Per-state device counts and totals, for the service status."""
        states: dict[str, int] = {}
        for link in self.links.values():
            states[link.state] = states.get(link.state, 0) + 1
        return {
            "devices": len(self.links),
            "states": states,
            "frames": sum(x.frames for x in self.links.values()),
            "samples": sum(x.samples for x in self.links.values()),
            "lost_packets": sum(x.seq.lost for x in self.links.values()),
            "decode_errors": sum(x.decode_errors for x in self.links.values()),
        }
