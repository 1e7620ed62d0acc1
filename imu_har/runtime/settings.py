"""Typed service settings from flags, environment and a config file.

Each service declares one flat pydantic model (subclass of :class:`MqttSettings`).
:func:`load_settings` builds the command-line flags from the model's fields
(``mqtt_host`` -> ``--mqtt-host``), reads ``HAR_MQTT_HOST``-style environment
variables and an optional ``--config`` TOML/JSON file, and validates once.
Precedence: flags > environment > file > defaults. A bad value exits with a
readable message naming the setting, before anything connects.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imu_har.protocol.topics import DEFAULT_ROOT, validate_root
from imu_har.runtime.logs import configure_logging

ENV_PREFIX = "HAR_"
S = TypeVar("S", bound="MqttSettings")


def nice_field(default: int, description: str) -> Any:
    """The ``cpu_nice`` setting with a service's own default: 0 (no change) to 19 (the
    lowest priority); raising a priority would need privileges."""
    return Field(default=default, ge=0, le=19, description=description)


class MqttSettings(BaseModel):
    """Broker connection and topic root, shared by every service."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    mqtt_host: str = Field(default="127.0.0.1", description="Broker host name or address")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port")
    mqtt_username: str | None = Field(default=None, description="Broker user name")
    mqtt_password: str | None = Field(default=None, description="Broker password")
    mqtt_tls: bool = Field(default=False, description="Connect with TLS")
    mqtt_ca_file: Path | None = Field(default=None, description="CA bundle for TLS")
    mqtt_cert_file: Path | None = Field(default=None, description="Client certificate for TLS")
    mqtt_key_file: Path | None = Field(default=None, description="Client key for TLS")
    mqtt_tls_insecure: bool = Field(default=False, description="Skip TLS host name check")
    mqtt_keepalive: int = Field(default=30, ge=5, le=3600, description="Keepalive seconds")
    mqtt_nodelay: bool = Field(default=True, description="TCP_NODELAY on the broker socket")
    mqtt_fast_receive: bool = Field(
        default=True, description="Read many messages per system call (imu_har.runtime.fastrecv)"
    )
    client_id: str | None = Field(default=None, description="MQTT client id (default: generated)")
    topic_root: str = Field(default=DEFAULT_ROOT, description="Root of every topic")
    status_interval: float = Field(default=5.0, gt=0, le=3600, description="Status period (s)")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    cpu_nice: int = nice_field(0, "Lower this service's CPU priority by this (nice)")

    @field_validator("topic_root")
    @classmethod
    def _root(cls, value: str) -> str:
        return validate_root(value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {value} does not exist")
        return value


def build_parser(
    model: type[BaseModel], prog: str, description: str = ""
) -> argparse.ArgumentParser:
    """An argparse parser with one flag per field of ``model`` (all defaults ``None``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"Every flag can also be set as {ENV_PREFIX}<FLAG_NAME> in the environment.",
    )
    parser.add_argument("--config", type=Path, help="TOML or JSON file with settings")
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = (field.description or "") + f" (default: {field.default!r})"
        if _is_bool(field.annotation):
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                dest=name,
                default=None,
                help=help_text,
                nargs="+" if _is_list(field.annotation) else None,
            )
    return parser


def load_settings(
    model: type[S],
    argv: Sequence[str] | None = None,
    prog: str = "har",
    description: str = "",
    env: Mapping[str, str] | None = None,
) -> S:
    """Parse flags/env/file into ``model``; exit(2) with a readable message if invalid."""
    parser = build_parser(model, prog, description)
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(_read_file(parser, args.config))
    values.update(_from_env(model, os.environ if env is None else env))
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        lines = [f"{prog}: invalid settings:"]
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(
                f"  --{field.replace('_', '-')} / {ENV_PREFIX}{field.upper()}: {err['msg']}"
            )
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def service_settings(
    model: type[S], name: str, description: str, argv: Sequence[str] | None = None
) -> S:
    """A service's start: its settings from ``har <name>``'s flags/env/file, logging set up."""
    settings = load_settings(model, argv, prog=f"har {name}", description=description)
    configure_logging(str(getattr(settings, "log_level", "INFO")), name)
    return settings


def _from_env(model: type[BaseModel], env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None or raw == "":
            continue
        values[name] = raw.split(",") if _is_list(field.annotation) else raw
    return values


def _read_file(parser: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read config file {path}: {exc}")
    if not isinstance(data, dict):
        parser.error(f"config file {path} must hold a table/object of settings")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _strip_optional(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _is_bool(annotation: Any) -> bool:
    return _strip_optional(annotation) is bool


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(_strip_optional(annotation)) in (list, tuple)
