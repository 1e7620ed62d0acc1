"""Every MQTT topic of the system, built and parsed in one place.

Topics live under a configurable root (default ``har``). A :class:`TopicTemplate`
formats a concrete topic, builds the subscription filter with ``+`` for its
variables, and parses a received topic back into its variables; for hot paths
it also gives precompiled formatters and splitters (:meth:`TopicTemplate.fast`,
:meth:`TopicTemplate.splitter`). Device ids are validated here so that no other
module has to think about wildcards or paths. No other module builds a topic
string: a test reads every module's source to keep it so, and another checks
that the table in docs/protocol.md lists exactly the templates below.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from imu_har.protocol.errors import PayloadError

DEFAULT_ROOT = "har"
MAX_DEVICE_ID_LENGTH = 64
MAX_TOPIC_BYTES = 65535  # MQTT's UTF-8 string limit
# Second-level names that are not devices: they would collide with service topics.
RESERVED_NAMES = frozenset(
    {
        "service",
        "recorder",
        "classifier",
        "model",
        "windower",
        "gateway",
        "trainer",
        "workout",
        "dashboard",
        "homeassistant",
    }
)
# Full matches only: ``$`` would also match before a trailing newline (issue 12).
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")
_ROOT = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*")
_SHARE_GROUP = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


@lru_cache(maxsize=65536)  # only valid ids are cached: invalid ones raise
def validate_device_id(device: str) -> str:
    """Return ``device`` if it is a safe id, else raise :class:`PayloadError`.

    Allowed: ASCII letters, digits and ``_ . : -``, starting with a letter or
    digit, at most 64 characters, and not a reserved name. This excludes MQTT
    wildcards, ``/``, control characters (a trailing newline too), ``..`` path
    tricks and empty ids.
    """
    if not isinstance(device, str) or not device:
        raise PayloadError("bad_device", "device id must be a non-empty string")
    if len(device) > MAX_DEVICE_ID_LENGTH:
        raise PayloadError("bad_device", f"device id longer than {MAX_DEVICE_ID_LENGTH} characters")
    if not _DEVICE_ID.fullmatch(device) or ".." in device:
        raise PayloadError("bad_device", f"device id {device[:80]!r} has forbidden characters")
    if device.lower() in RESERVED_NAMES:
        raise PayloadError("bad_device", f"device id {device!r} is a reserved topic name")
    return device


def validate_root(root: str) -> str:
    """Return the topic root if it has no wildcards, empty levels or odd characters."""
    if not isinstance(root, str) or not _ROOT.fullmatch(root):
        raise ValueError(f"topic root {root!r} must be levels of [A-Za-z0-9_-] joined by '/'")
    return root


def validate_client_id(client_id: str) -> str:
    """Return a client id usable as one topic level (1-64 of ``[A-Za-z0-9_.:-]``)."""
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id) or ".." in client_id:
        raise ValueError(f"client id {client_id!r} must be 1-64 of [A-Za-z0-9_.:-]")
    return client_id


def publish_topic_problem(topic: object) -> str | None:
    """Why ``topic`` cannot be published to (a response topic from a request), or None.

    A publish topic is a non-empty UTF-8 string of at most 65,535 bytes without
    wildcards (``+``, ``#``), NUL or other control characters, and not a ``$``
    system topic.
    """
    if not isinstance(topic, str) or not topic:
        return "empty or not a string"
    if any(ch in topic for ch in "+#"):
        return "contains a wildcard"
    if topic.startswith("$"):
        return "is a $-topic"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in topic):
        return "contains control characters"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size > MAX_TOPIC_BYTES:
        return f"is longer than {MAX_TOPIC_BYTES} bytes"
    return None


@dataclass(frozen=True)
class TopicTemplate:
    """A topic pattern such as ``{root}/{device}/imu``; ``{root}`` is always first.

    ``default_root`` is where the topic lives unless configured otherwise: the
    protocol's root, or another program's topic (the Sensor Logger app's); every
    method takes ``root`` and falls back to it.
    """

    pattern: str
    default_root: str = DEFAULT_ROOT

    @property
    def variables(self) -> tuple[str, ...]:
        """Names of the variables after the root, in order."""
        return tuple(re.findall(r"\{(\w+)\}", self.pattern))[1:]

    def format(self, root: str | None = None, **values: str) -> str:
        """Build a concrete topic; a ``device`` value is validated, others must be one level."""
        for name, value in values.items():
            if name == "device":
                validate_device_id(value)
            elif not isinstance(value, str) or not value or any(c in value for c in "/+#\0"):
                raise PayloadError("bad_topic", f"{name} {value!r} is not one topic level")
        return self.pattern.format(root=root or self.default_root, **values)

    def subscription(self, root: str | None = None, **fixed: str) -> str:
        """The subscription filter: unfixed variables become ``+``."""
        values = {name: fixed.get(name, "+") for name in self.variables}
        return self.pattern.format(root=root or self.default_root, **values)

    def shared(self, group: str, root: str | None = None, **fixed: str) -> str:
        """The MQTT v5 shared subscription ``$share/<group>/<filter>`` (replicas split it)."""
        if not _SHARE_GROUP.fullmatch(group):
            raise ValueError(f"share group {group!r} must be 1-64 of [A-Za-z0-9_-]")
        return f"$share/{group}/{self.subscription(root, **fixed)}"

    @lru_cache(maxsize=64)  # noqa: B019 (templates are module constants)
    def _regex(self, root: str) -> re.Pattern[str]:
        """The compiled pattern of this template under ``root`` (cached: parsed per message)."""
        regex = re.escape(root) + re.escape(self.pattern[len("{root}") :])
        for name in self.variables:
            regex = regex.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)")
        return re.compile(regex)

    def parse(self, topic: str, root: str | None = None) -> dict[str, str] | None:
        """Variables of ``topic`` if it matches this template, else ``None``.

        A matching topic whose ``device`` level is not a valid id raises
        :class:`PayloadError` so the caller can count it.
        """
        match = self._regex(root or self.default_root).fullmatch(topic)
        if match is None:
            return None
        values = match.groupdict()
        if "device" in values:
            validate_device_id(values["device"])
        return values

    def fast(self, root: str | None = None) -> Callable[[str], str]:
        """A precompiled formatter of a one-variable template, for hot paths.

        It does **not** validate: give it only values that came out of a
        validated message (a decoded frame's device id, say).
        """
        if len(self.variables) != 1:
            raise ValueError(f"{self.pattern}: fast() needs exactly one variable")
        prefix, suffix = self._pieces(root or self.default_root)
        if not suffix:
            return prefix.__add__
        return lambda value: prefix + value + suffix

    def splitter(self, root: str | None = None) -> Callable[[str], str | None]:
        """A precompiled parser of a one-variable template: the level's raw value or None.

        The value is **not** validated (the caller validates, or compares it
        with an already validated id); a topic of another shape gives None.
        """
        if len(self.variables) != 1:
            raise ValueError(f"{self.pattern}: splitter() needs exactly one variable")
        prefix, suffix = self._pieces(root or self.default_root)
        start, cut = len(prefix), len(suffix)

        def split(topic: str) -> str | None:
            if not (topic.startswith(prefix) and topic.endswith(suffix)):
                return None
            value = topic[start : len(topic) - cut]
            return value if value and "/" not in value else None

        return split

    def _pieces(self, root: str) -> tuple[str, str]:
        concrete = self.pattern.format(root=root or self.default_root, **{self.variables[0]: "\0"})
        prefix, _, suffix = concrete.partition("\0")
        return prefix, suffix


def everything(root: str = DEFAULT_ROOT) -> str:
    """The filter for every topic under ``root`` (the dashboard and monitors subscribe to it)."""
    return f"{validate_root(root)}/#"


def templates() -> dict[str, TopicTemplate]:
    """Every topic template of the protocol, by its name in this module."""
    return {name: value for name, value in globals().items() if isinstance(value, TopicTemplate)}


# Device data
IMU = TopicTemplate("{root}/{device}/imu")  # binary raw frames (codec.Frame)
WINDOW = TopicTemplate("{root}/{device}/window")  # binary windows (codec.Window)
PREDICTION = TopicTemplate("{root}/{device}/prediction")  # JSON messages.Prediction
DEVICE_STATUS = TopicTemplate("{root}/{device}/status")  # JSON messages.DeviceStatus, retained
GROUND_TRUTH = TopicTemplate("{root}/{device}/truth")  # JSON messages.GroundTruth (simulator)
# Workouts (har workout)
REP = TopicTemplate("{root}/{device}/rep")  # JSON workout.RepEvent
SET = TopicTemplate("{root}/{device}/set")  # JSON workout.SetEvent
WORKOUT = TopicTemplate("{root}/{device}/workout")  # JSON workout.WorkoutState, retained
# Services
SERVICE_STATUS = TopicTemplate("{root}/service/{service}/status")  # JSON, retained, Last Will
MODEL_SPEC = TopicTemplate("{root}/model/spec")  # JSON model_spec.ModelSpec, retained
CLASSIFIER_CMD = TopicTemplate("{root}/classifier/cmd")  # JSON commands.ClassifierCommand
CLASSIFIER_REPLY = TopicTemplate("{root}/classifier/reply")  # JSON reply fallback (v3.1.1)
RECORDER_CMD = TopicTemplate("{root}/recorder/cmd")  # JSON commands.RecorderCommand
RECORDER_REPLY = TopicTemplate("{root}/recorder/reply")  # JSON reply fallback (v3.1.1)
RECORDER_STATUS = TopicTemplate("{root}/recorder/status")  # JSON, retained
TRAINER_CMD = TopicTemplate("{root}/trainer/cmd")  # JSON trainer command
TRAINER_REPLY = TopicTemplate("{root}/trainer/reply")  # JSON reply fallback (v3.1.1)
TRAINER_STATUS = TopicTemplate("{root}/trainer/status")  # JSON, retained
# Phones: the Sensor Logger app publishes outside the root, on its own topic (``{root}`` is
# the gateway's --sensor-logger-topic, the app's default below); a phone with a broker account
# of its own publishes one level below it, named by its user name (docs/deployment.md).
SENSOR_LOGGER_TOPIC = "sensor-logger"
SENSOR_LOGGER = TopicTemplate("{root}", SENSOR_LOGGER_TOPIC)  # JSON, the app's schema
SENSOR_LOGGER_DEVICE = TopicTemplate("{root}/{device}", SENSOR_LOGGER_TOPIC)  # same, per account
# Home Assistant (har homeassistant, docs/homeassistant.md): discovery and Home Assistant's own
# status live under its discovery prefix (``{root}`` is the bridge's --discovery-prefix, the
# default below); the bridge's state, wearable availability and events under the protocol root.
# The bridge's own availability is its SERVICE_STATUS (its Last Will).
HOME_ASSISTANT_PREFIX = "homeassistant"
HA_DISCOVERY = TopicTemplate("{root}/device/{node}/config", HOME_ASSISTANT_PREFIX)  # retained
HA_STATUS = TopicTemplate("{root}/status", HOME_ASSISTANT_PREFIX)  # online/offline, by HA
HA_STATE = TopicTemplate("{root}/homeassistant/{device}/state")  # JSON, rate-limited
HA_AVAILABILITY = TopicTemplate("{root}/homeassistant/{device}/availability")  # retained
HA_EVENT = TopicTemplate("{root}/homeassistant/{device}/event")  # JSON with event_type
# Clients
DASHBOARD_REPLY = TopicTemplate("{root}/dashboard/{client}/reply")  # v5 response topic
