"""Broker accounts and their topic rights: the table every imu-har broker's ACL is made of.

Which account may read and write which topics, in code: :func:`accounts` (the
services', the monitor's, the phones' and Home Assistant's user names),
:func:`device_rules` (a wearable logged in with its device id) and
:func:`anonymous_rules` (development brokers only). :mod:`imu_har.ops.acl`
renders them as Mosquitto's ``acl_file``; docs/deployment.md has the same
rights as a table, and tests check the real broker against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imu_har.protocol import topics
from imu_har.protocol.topics import DEFAULT_ROOT, RESERVED_NAMES

# Topics outside the root, named by other software (not protocol templates).
SENSOR_LOGGER = topics.SENSOR_LOGGER_TOPIC  # the Sensor Logger phone app's default MQTT topic
HOME_ASSISTANT = topics.HOME_ASSISTANT_PREFIX  # Home Assistant's MQTT discovery prefix
ACCESS = ("read", "write", "readwrite", "deny")
# Accounts of the services that run next to the broker (compose network, har up).
SERVICE_ACCOUNTS = (
    "gateway",
    "windower",
    "classifier",
    "recorder",
    "dashboard",
    "workout",
    "trainer",
    "homeassistant",
)


@dataclass(frozen=True)
class Rule:
    """One ACL line: ``access`` (read, write, readwrite, deny) on a topic filter."""

    access: str
    topic: str

    def __post_init__(self) -> None:
        if self.access not in ACCESS:
            raise ValueError(f"access must be one of {ACCESS}, not {self.access!r}")

    def line(self, keyword: str = "topic") -> str:
        """The ``acl_file`` line."""
        return f"{keyword} {self.access} {self.topic}"


@dataclass(frozen=True)
class Account:
    """A broker user name, why it exists, and its rules."""

    name: str
    about: str
    rules: tuple[Rule, ...] = field(default=())


def _rules(access: str, *topic_filters: str) -> list[Rule]:
    return [Rule(access, t) for t in topic_filters]


def _status(root: str, service: str) -> list[Rule]:
    """Every service writes its own retained status (also its Last Will) and reads the others'."""
    own = topics.SERVICE_STATUS.format(root, service=service)
    return [Rule("readwrite", own), Rule("read", topics.SERVICE_STATUS.subscription(root))]


def _not_a_device(root: str, name: str) -> list[Rule]:
    """Deny the device rules' topics for ``name``: the patterns apply to every user name.

    Names that are reserved topic levels (gateway, recorder, ...) are never
    device ids, so no service reads what those topics would carry; any other
    account (monitor, phone) would otherwise pass for a device of its name.
    """
    if name.lower() in RESERVED_NAMES:
        return []
    return [Rule("deny", r.topic.replace("%u", name)) for r in device_rules(root)]


def device_rules(root: str = DEFAULT_ROOT) -> list[Rule]:
    """``pattern`` rules: a wearable's account (user name = device id) owns its own topics."""
    return [
        Rule("write", topics.IMU.subscription(root, device="%u")),
        Rule("write", topics.DEVICE_STATUS.subscription(root, device="%u")),
        Rule("read", topics.PREDICTION.subscription(root, device="%u")),
        Rule("write", topics.SENSOR_LOGGER_DEVICE.subscription(device="%u")),
    ]


def _commands(root: str) -> list[str]:
    """The command topics a person sends to (anonymously or through the dashboard)."""
    t = topics
    return [t.RECORDER_CMD.format(root), t.CLASSIFIER_CMD.format(root), t.TRAINER_CMD.format(root)]


def _ha_bridge(root: str) -> list[str]:
    """What the Home Assistant bridge writes under the root and Home Assistant reads."""
    t = topics
    return [
        t.HA_STATE.subscription(root),
        t.HA_AVAILABILITY.subscription(root),
        t.HA_EVENT.subscription(root),
    ]


def anonymous_rules(root: str = DEFAULT_ROOT) -> list[Rule]:
    """Anonymous clients of a development broker (``har up``, docker-compose.dev.yml).

    What a person at the machine does with mosquitto_sub/pub: watch everything,
    send commands, feed raw frames. Nothing a service owns (predictions, the
    model spec, statuses) can be written anonymously.
    """
    return [
        Rule("read", topics.everything(root)),
        *_rules("write", *_commands(root), topics.IMU.subscription(root)),
    ]


def accounts(root: str = DEFAULT_ROOT) -> list[Account]:
    """Every named account and its rules, services first."""
    t, everything = topics, topics.everything(root)
    device = t.DEVICE_STATUS.subscription(root)
    truth = t.GROUND_TRUTH.subscription(root)
    replies = t.DASHBOARD_REPLY.subscription(root)
    reserved = sorted(RESERVED_NAMES)
    return [
        Account(
            "gateway",
            "wearables (BLE, simulated, replayed, phones) to raw frames and device statuses",
            (
                *_rules("write", t.IMU.subscription(root), device, truth),
                # har/+/status also matches har/recorder/status, har/trainer/status: not a device's
                *[Rule("deny", t.DEVICE_STATUS.subscription(root, device=n)) for n in reserved],
                *_rules("read", SENSOR_LOGGER, topics.everything(SENSOR_LOGGER)),
                Rule("read", t.PREDICTION.subscription(root)),  # back to the phone page
                *_status(root, "gateway"),
            ),
        ),
        Account(
            "windower",
            "raw frames to windows, shaped by the classifier's model spec",
            (
                *_rules("read", t.IMU.subscription(root), t.MODEL_SPEC.format(root)),
                Rule("write", t.WINDOW.subscription(root)),
                *_status(root, "windower"),
            ),
        ),
        Account(
            "classifier",
            "windows to predictions; the only writer of the retained model spec",
            (
                *_rules("read", t.WINDOW.subscription(root), t.CLASSIFIER_CMD.format(root)),
                # replicas read each other's predictions for their shared smoothing
                Rule("readwrite", t.PREDICTION.subscription(root)),
                Rule("readwrite", t.MODEL_SPEC.format(root)),
                *_rules("write", t.CLASSIFIER_REPLY.format(root), replies),
                *_status(root, "classifier"),
            ),
        ),
        Account(
            "recorder",
            "labelled recordings, the prediction and workout logs; knows devices from statuses",
            (
                *_rules(
                    "read",
                    t.IMU.subscription(root),
                    t.GROUND_TRUTH.subscription(root),
                    t.PREDICTION.subscription(root),
                    t.REP.subscription(root),
                    t.SET.subscription(root),
                    device,
                    t.RECORDER_CMD.format(root),
                ),
                *_rules("write", t.RECORDER_REPLY.format(root), replies),
                Rule("readwrite", t.RECORDER_STATUS.format(root)),
                *_status(root, "recorder"),
            ),
        ),
        Account(
            "dashboard",
            "shows everything; sends recorder, classifier and trainer commands",
            (
                Rule("read", everything),
                *_rules("write", *_commands(root)),
                Rule("readwrite", t.SERVICE_STATUS.format(root, service="dashboard")),
            ),
        ),
        Account(
            "workout",
            "sets and repetitions from frames, predictions and device statuses",
            (
                *_rules("read", t.IMU.subscription(root), t.PREDICTION.subscription(root), device),
                *_rules(
                    "write",
                    t.REP.subscription(root),
                    t.SET.subscription(root),
                    t.WORKOUT.subscription(root),
                ),
                *_status(root, "workout"),
            ),
        ),
        Account(
            "trainer",
            "trains models on command; the dashboard activates them",
            (
                Rule("read", t.TRAINER_CMD.format(root)),
                *_rules("write", t.TRAINER_REPLY.format(root), replies),
                Rule("readwrite", t.TRAINER_STATUS.format(root)),
                *_status(root, "trainer"),
            ),
        ),
        Account(
            "homeassistant",
            "the Home Assistant bridge: wearables in, discovery, state and events out",
            (
                *_rules(
                    "read",
                    device,
                    t.PREDICTION.subscription(root),
                    t.WORKOUT.subscription(root),
                    t.REP.subscription(root),
                    t.SET.subscription(root),
                    t.MODEL_SPEC.format(root),
                    t.HA_STATUS.format(HOME_ASSISTANT),
                ),
                *_rules(
                    "write",
                    t.HA_DISCOVERY.subscription(HOME_ASSISTANT),
                    *_ha_bridge(root),
                ),
                *_status(root, "homeassistant"),
            ),
        ),
        Account(
            "monitor",
            "read-only, for people and tools (mosquitto_sub, the broker healthcheck)",
            (
                *_rules("read", everything, "$SYS/#"),
                *_not_a_device(root, "monitor"),
            ),
        ),
        Account(
            "phone",
            "phones running Sensor Logger on its default topic (one at a time on the TLS port)",
            (Rule("write", SENSOR_LOGGER), *_not_a_device(root, "phone")),
        ),
        Account(
            "hass",
            "Home Assistant itself: MQTT discovery, the bridge's topics, its birth message",
            (
                *_rules(
                    "read",
                    topics.everything(HOME_ASSISTANT),
                    *_ha_bridge(root),
                    t.SERVICE_STATUS.format(root, service="homeassistant"),
                ),
                Rule("write", t.HA_STATUS.format(HOME_ASSISTANT)),
                *_not_a_device(root, "hass"),
            ),
        ),
    ]


def account_names() -> list[str]:
    """The named accounts (devices come on top, named by their ids)."""
    return [a.name for a in accounts()]
