"""``--source phone``: phones through Sensor Logger (MQTT or HTTP push) and the phone page.

Built by ``sources.phone_source``: the token and certificate
(:mod:`credentials`), the hub, and the servers with their sockets bound. On the
MQTT side it is also the gateway handler's input (:meth:`subscriptions`,
:meth:`handle`): the app's topic and one level below it, the classifier's
retained status (which channels the served model needs), and the predictions
of every page that is connected, forwarded to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction, ServiceStatus
from imu_har.runtime.inbox import Inbound
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.phone import credentials
from services.ble_gateway.phone.hub import PhoneConfig, PhoneHub
from services.ble_gateway.phone.server import PhoneServer

if TYPE_CHECKING:
    from imu_har.runtime.service import ServiceRuntime
    from services.ble_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

TICK = 0.25  # s: how often held batches and idle phones are looked at


class PhoneSource:
    """The phone hub, its servers, and its MQTT inputs."""

    def __init__(self, core: GatewayCore, settings: GatewaySettings) -> None:
        self.settings, self.core = settings, core
        self.hub = PhoneHub(
            core,
            PhoneConfig(
                max_phones=settings.max_phones,
                max_bytes=settings.phone_max_bytes,
                rate_limit=settings.phone_rate_limit,
                reorder_seconds=settings.phone_reorder_seconds,
                idle_timeout=settings.phone_idle_timeout,
                ios_native=settings.ios_native_axes,
                renames=settings.renames(),
            ),
        )
        self.host = credentials.public_host(settings)
        self.token = credentials.token(settings)
        tls = credentials.certificate(settings, self.host) if settings.phone_https_port else None
        self.fingerprint = tls.fingerprint if tls else None
        self.server = PhoneServer(
            self.hub,
            host=settings.phone_host,
            https_port=settings.phone_https_port,
            http_port=settings.phone_http_port,
            tls=tls,
            token=self.token,
            path=settings.sensor_logger_path,
            max_bytes=settings.phone_max_bytes,
            reject=core.reject,
            watch=self._watch,
        )
        root, app_topic = settings.topic_root, settings.sensor_logger_topic
        self._app_topic = app_topic
        self._app_device = topics.SENSOR_LOGGER_DEVICE.splitter(app_topic)
        self._prediction_of = topics.PREDICTION.splitter(root)
        self._prediction_topic = topics.PREDICTION.fast(root)
        self._classifier = topics.SERVICE_STATUS.format(root, service="classifier")
        self.runtime: ServiceRuntime | None = None
        self._watched: set[str] = set()  # pages whose predictions we follow (<= max_phones)
        self._lock = threading.Lock()
        self._log_urls()

    def bind(self, runtime: ServiceRuntime) -> None:
        """The runtime the prediction subscriptions go through (the handler's)."""
        self.runtime = runtime

    # -- MQTT ------------------------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, int]]:
        """The app's topics (if enabled), the classifier's status, followed predictions."""
        subs = [(self._classifier, 1)]
        if self.settings.sensor_logger_mqtt:
            subs += [
                (topics.SENSOR_LOGGER.subscription(self._app_topic), 0),
                (topics.SENSOR_LOGGER_DEVICE.subscription(self._app_topic), 0),
            ]
        with self._lock:
            subs += [(self._prediction_topic(device), 0) for device in sorted(self._watched)]
        return subs

    def handle(self, message: Inbound) -> None:
        """One MQTT message; raises :class:`PayloadError` for a bad one."""
        topic, now = message.topic, time.monotonic()
        if topic == self._app_topic:
            self.hub.ingest(message.payload, message.received_at, now, via="mqtt")
        elif (level := self._app_device(topic)) is not None:
            self.hub.ingest(
                message.payload, message.received_at, now, via="mqtt", authenticated=level
            )
        elif (device := self._prediction_of(topic)) is not None:
            prediction = Prediction.from_payload(message.payload)
            if prediction.device != device:
                raise PayloadError("device_mismatch", f"prediction of {prediction.device!r}")
            self.hub.prediction(device, message.payload)
        elif topic == self._classifier:
            self._model(message.payload)
        else:
            raise PayloadError("bad_topic", f"{topic!r} is no phone input")

    def _model(self, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained status
        status = ServiceStatus.from_payload(payload)
        model = status.details.get("model")
        if status.state != "online" or not isinstance(model, dict):
            return
        channels = model.get("channels")
        if isinstance(channels, list) and all(isinstance(c, str) for c in channels):
            self.hub.set_model(str(model.get("name", "?"))[:64], tuple(channels))

    def _watch(self, device: str, on: bool) -> None:
        """Follow (or stop following) the predictions of a connected page."""
        topic = self._prediction_topic(device)
        with self._lock:
            if on == (device in self._watched):
                return
            (self._watched.add if on else self._watched.discard)(device)
        if self.runtime is not None:
            if on:
                self.runtime.subscribe([(topic, 0)])
            else:
                self.runtime.unsubscribe([topic])

    # -- the event loop ----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Serve the phone ports and look after held batches and idle phones until ``stop``."""
        ticker = asyncio.create_task(self._tick(stop))
        try:
            await self.server.run(stop)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def _tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for device in self.hub.tick(time.monotonic(), time.time()):
                    logger.info("phone %s idle: forgotten", device)
            except Exception as exc:  # a bug must not stop the phones
                self.core.reject("handler_error", f"phone tick: {exc!r}")
                logger.exception("phone tick failed")
            await asyncio.sleep(TICK)

    def close(self) -> None:
        """Release the sockets."""
        self.server.close()

    def details(self) -> dict[str, Any]:
        """For the gateway status: where phones connect, and how many do."""
        return {
            "phones": len(self.hub.devices()),
            "max_phones": self.settings.max_phones,
            **self.urls(),
            "token_required": self.token is not None,
            "certificate_sha256": self.fingerprint,
            "sensor_logger_topic": self._app_topic if self.settings.sensor_logger_mqtt else None,
        }

    def urls(self) -> dict[str, str]:
        """The page and push URLs phones use (without the token)."""
        ports, path, out = self.server.ports, self.settings.sensor_logger_path, {}
        host = f"[{self.host}]" if ":" in self.host else self.host
        if "https" in ports:
            out["page"] = f"https://{host}:{ports['https']}/"
            out["push_https"] = f"https://{host}:{ports['https']}{path}"
        if "http" in ports:
            out["push"] = f"http://{host}:{ports['http']}{path}"
        return out

    def _log_urls(self) -> None:
        suffix = f"?token={self.token}" if self.token else ""
        for name, url in self.urls().items():
            logger.info("phones: %s %s%s", name, url, suffix)
