"""Every MQTT topic of the system, built and parsed in one place.

Topics live under a configurable root (default ``har``). A :class:`TopicTemplate`
formats a concrete topic, builds the subscription filter with ``+`` for its
variables, and parses a received topic back into its variables. Device ids are
validated here so that no other module has to think about wildcards or paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from imu_har.protocol.errors import PayloadError

DEFAULT_ROOT = "har"
MAX_DEVICE_ID_LENGTH = 64
# Second-level names that are not devices: they would collide with device topics.
RESERVED_NAMES = frozenset({"service", "recorder", "classifier", "model", "windower", "gateway"})
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
_ROOT = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")


@lru_cache(maxsize=65536)  # only valid ids are cached: invalid ones raise
def validate_device_id(device: str) -> str:
    """Return ``device`` if it is a safe id, else raise :class:`PayloadError`.

    Allowed: ASCII letters, digits and ``_ . : -``, starting with a letter or
    digit, at most 64 characters, and not a reserved name. This excludes MQTT
    wildcards, ``/``, control characters, ``..`` path tricks and empty ids.
    """
    if not isinstance(device, str) or not device:
        raise PayloadError("bad_device", "device id must be a non-empty string")
    if len(device) > MAX_DEVICE_ID_LENGTH:
        raise PayloadError("bad_device", f"device id longer than {MAX_DEVICE_ID_LENGTH} characters")
    if not _DEVICE_ID.match(device) or ".." in device:
        raise PayloadError("bad_device", f"device id {device[:80]!r} has forbidden characters")
    if device.lower() in RESERVED_NAMES:
        raise PayloadError("bad_device", f"device id {device!r} is a reserved topic name")
    return device


def validate_root(root: str) -> str:
    """Return the topic root if it has no wildcards, empty levels or odd characters."""
    if not _ROOT.match(root):
        raise ValueError(f"topic root {root!r} must be levels of [A-Za-z0-9_-] joined by '/'")
    return root


@dataclass(frozen=True)
class TopicTemplate:
    """A topic pattern such as ``{root}/{device}/imu``; ``{root}`` is always first."""

    pattern: str

    @property
    def variables(self) -> tuple[str, ...]:
        """Names of the variables after the root, in order."""
        return tuple(re.findall(r"\{(\w+)\}", self.pattern))[1:]

    def format(self, root: str = DEFAULT_ROOT, **values: str) -> str:
        """Build a concrete topic; a ``device`` value is validated."""
        if "device" in values:
            validate_device_id(values["device"])
        return self.pattern.format(root=root, **values)

    def subscription(self, root: str = DEFAULT_ROOT, **fixed: str) -> str:
        """The subscription filter: unfixed variables become ``+``."""
        values = {name: fixed.get(name, "+") for name in self.variables}
        return self.pattern.format(root=root, **values)

    @lru_cache(maxsize=64)  # noqa: B019 (templates are module constants)
    def _regex(self, root: str) -> re.Pattern[str]:
        """The compiled pattern of this template under ``root`` (cached: parsed per message)."""
        regex = "^" + re.escape(root) + re.escape(self.pattern[len("{root}") :]) + "$"
        for name in self.variables:
            regex = regex.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)")
        return re.compile(regex)

    def parse(self, topic: str, root: str = DEFAULT_ROOT) -> dict[str, str] | None:
        """Variables of ``topic`` if it matches this template, else ``None``.

        A matching topic whose ``device`` level is not a valid id raises
        :class:`PayloadError` so the caller can count it.
        """
        match = self._regex(root).match(topic)
        if match is None:
            return None
        values = match.groupdict()
        if "device" in values:
            validate_device_id(values["device"])
        return values


# Device data
IMU = TopicTemplate("{root}/{device}/imu")  # binary raw frames (codec.Frame)
WINDOW = TopicTemplate("{root}/{device}/window")  # binary windows (codec.Window)
PREDICTION = TopicTemplate("{root}/{device}/prediction")  # JSON messages.Prediction
DEVICE_STATUS = TopicTemplate("{root}/{device}/status")  # JSON messages.DeviceStatus, retained
GROUND_TRUTH = TopicTemplate("{root}/{device}/truth")  # JSON messages.GroundTruth (simulator)
# Services
SERVICE_STATUS = TopicTemplate("{root}/service/{service}/status")  # JSON, retained, Last Will
MODEL_SPEC = TopicTemplate("{root}/model/spec")  # JSON model_spec.ModelSpec, retained
CLASSIFIER_CMD = TopicTemplate("{root}/classifier/cmd")  # JSON commands.ClassifierCommand
CLASSIFIER_REPLY = TopicTemplate("{root}/classifier/reply")  # JSON reply fallback (v3.1.1)
RECORDER_CMD = TopicTemplate("{root}/recorder/cmd")  # JSON commands.RecorderCommand
RECORDER_REPLY = TopicTemplate("{root}/recorder/reply")  # JSON reply fallback (v3.1.1)
RECORDER_STATUS = TopicTemplate("{root}/recorder/status")  # JSON, retained
