"""Settings of ``har dashboard`` and how the Streamlit process reads them back.

``har dashboard`` validates the settings (flags, ``HAR_*`` environment,
``--config``) and hands them to the Streamlit process as JSON in
``HAR_DASHBOARD_SETTINGS``; the page script reads them with :func:`page_settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from imu_har.protocol.topics import validate_client_id
from imu_har.runtime.settings import MqttSettings, load_settings

SETTINGS_ENV = "HAR_DASHBOARD_SETTINGS"
# Addresses that only this machine can reach: the dashboard may serve them without a login.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class DashboardSettings(MqttSettings):
    """Settings of ``har dashboard``."""

    port: int = Field(default=8501, ge=1, le=65535, description="HTTP port of the dashboard")
    address: str = Field(
        default="127.0.0.1", description="Address to serve on (0.0.0.0 for the whole network)"
    )
    data_dir: Path = Field(default=Path("data"), description="Recorder data directory")
    models_dir: Path = Field(
        default=Path("models"),
        description="Model artifacts (the trainer's), read when the trainer is not online",
    )
    # Compose: the recordings volume is read-only here, and a volume cannot be mounted
    # inside a read-only one unless the mount point already exists in it (docker/for-linux#128).
    phone_dir: Path | None = Field(
        default=None,
        description="The phone gateway's --phone-dir, for its token (default: <data-dir>/phone)",
    )
    refresh: float = Field(default=1.0, ge=0.2, le=60, description="Page refresh period (s)")
    history: float = Field(default=10.0, gt=0, le=600, description="Seconds of IMU data plotted")
    max_devices: int = Field(default=32, ge=1, le=1000, description="Most devices tracked at once")
    idle_timeout: float = Field(default=120.0, gt=0, description="Forget a silent device after (s)")
    auth_file: Path | None = Field(
        default=None,
        description="Login file of user:scrypt$... lines (python -m services.dashboard.auth USER)",
    )
    allow_anonymous: bool = Field(
        default=False,
        description="Serve without a login on an address beyond loopback (anyone there may "
        "start recordings and download sessions)",
    )

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        # The client id is one level of the reply topic <root>/dashboard/<client>/reply.
        return None if value is None else validate_client_id(value)

    @property
    def loopback(self) -> bool:
        """True when the dashboard is reachable from this machine only."""
        return self.address in LOOPBACK

    @property
    def phone_token_file(self) -> Path:
        """Where the phone gateway writes its token: ``<--phone-dir or <data-dir>/phone>/token``."""
        return (self.phone_dir or self.data_dir / "phone") / "token"


def page_settings(env: Mapping[str, str] | None = None) -> DashboardSettings:
    """The settings inside the Streamlit process: from ``har dashboard``, else ``HAR_*``.

    Raises ``ValueError`` with a readable message when they are invalid.
    """
    env = os.environ if env is None else env
    raw = env.get(SETTINGS_ENV)
    try:
        if raw:
            return DashboardSettings.model_validate_json(raw)
        return load_settings(DashboardSettings, [], prog="har dashboard", env=env)
    except (ValidationError, SystemExit) as exc:
        raise ValueError(f"invalid dashboard settings: {exc}") from None
