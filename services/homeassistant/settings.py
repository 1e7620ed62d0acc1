"""Settings of ``har homeassistant``: every default is declared here, and only here.

The pure core (:mod:`services.homeassistant.core`) takes these settings; flags,
``HAR_*`` environment variables and ``--config`` files are generated from them
(:mod:`imu_har.runtime.settings`).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from imu_har.protocol.topics import HOME_ASSISTANT_PREFIX, validate_root
from imu_har.runtime.settings import MqttSettings


class HomeAssistantSettings(MqttSettings):
    """Settings of ``har homeassistant``."""

    discovery_prefix: str = Field(
        default=HOME_ASSISTANT_PREFIX, description="Home Assistant's MQTT discovery prefix"
    )
    # Home Assistant records every state change of every entity; a wearable's confidence
    # changes with nearly every window (2.5 per second), so it is quantised and the state
    # topic rate-limited (docs/homeassistant.md).
    max_state_rate: float = Field(
        default=1.0, gt=0, le=100, description="State messages per wearable per second, at most"
    )
    confidence_step: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Confidence is reported in steps of this many percentage points",
    )
    max_event_rate: float = Field(
        default=5.0, gt=0, le=100, description="Events per wearable per second, at most"
    )
    # The gateway republishes every status each --status-interval (5 s); one that died leaves
    # its last status retained, so a wearable would look connected forever.
    link_timeout: float = Field(
        default=60.0, gt=0, description="A link status not refreshed this long (s) is stale"
    )
    forget_after: float = Field(
        default=7 * 86_400.0, gt=0, description="Forget a wearable not heard of this long (s)"
    )
    remove_forgotten: bool = Field(
        default=True, description="Remove a forgotten wearable from Home Assistant"
    )
    birth_delay: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="After Home Assistant comes online, republish discovery after (s)",
    )
    max_wearables: int = Field(default=10_000, ge=1, description="Most wearables at once")
    max_labels: int = Field(
        default=64, ge=1, le=1024, description="Most exercise classes offered to Home Assistant"
    )
    max_batch: int = Field(
        default=512, ge=1, le=100_000, description="Most messages handled in one batch"
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return validate_root(value)
