"""The Phone page under Streamlit's AppTest: QR code and settings from the gateway's status, the
token from the data directory, the phones table; a forged status puts nothing into the QR code.
"""

from __future__ import annotations

import pytest

from imu_har.protocol.messages import DeviceStatus, ServiceStatus
from tests.support import publish as pub
from tests.support.dashboard import app, connection_of, texts, wait_until

pytestmark = pytest.mark.broker
TOKEN = "Zx9-token_for-the-phone-page"  # noqa: S105 (a test's own token)


def gateway_status(**phone: object) -> ServiceStatus:
    details = {
        "page": "https://192.168.1.20:8765/",
        "push": "http://192.168.1.20:8766/sensor-logger",
        "token_required": True,
        "certificate_sha256": "ab" * 32,
        "sensor_logger_topic": "sensor-logger",
        "phones": 1,
        "max_phones": 500,
        **phone,
    }
    return ServiceStatus(
        service="gateway", instance="gw-1", state="online", details={"phone": details}
    )


def shown_images(at) -> list[bytes]:  # type: ignore[no-untyped-def]
    return list(at.get("image"))


def test_phone_page_shows_qr_token_and_phones(dashboard_settings, mqtt_client):  # type: ignore[no-untyped-def]
    (dashboard_settings.data_dir / "phone").mkdir(parents=True)
    (dashboard_settings.data_dir / "phone" / "token").write_text(TOKEN + "\n")
    conn = connection_of(dashboard_settings)
    pub.publish(
        mqtt_client, "har/service/gateway/status", gateway_status().to_payload(), retain=True
    )
    status = DeviceStatus(
        device="pixel-8",
        state="streaming",
        source="phone",
        address="mqtt",
        sample_rate=100.0,
        acceleration="total",
        channels=["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
        error="model 'default' needs mag_x, mag_y, mag_z, which this phone does not send",
    )
    pub.publish(mqtt_client, "har/pixel-8/status", status.to_payload(), retain=True)
    wait_until(lambda: "gateway" in conn.store.snapshot()["services"])
    wait_until(lambda: (v := conn.store.device("pixel-8")) is not None and v.status is not None)
    at = app("phone")
    assert not at.exception
    shown = texts(at)
    assert f"https://192.168.1.20:8765/?token={TOKEN}" in shown
    assert f"http://192.168.1.20:8766/sensor-logger?token={TOKEN}" in shown
    assert "sensor-logger" in shown and "ab" * 32 in shown
    assert "does not know a phone" in shown  # the demo model's limits, said plainly
    assert len(shown_images(at)) == 1  # the QR code
    table = at.dataframe[0].value
    row = table[table.device == "pixel-8"].iloc[0]
    assert row["acceleration"] == "total" and "mag_x" in row["problem"]
    assert "gyro_z" in row["channels"] and row["samples/s"] == 100.0
    pub.publish(mqtt_client, "har/pixel-8/status", b"", retain=True)
    pub.publish(mqtt_client, "har/service/gateway/status", b"", retain=True)


def test_a_forged_status_gets_no_qr_code(dashboard_settings, mqtt_client):  # type: ignore[no-untyped-def]
    conn = connection_of(dashboard_settings)
    forged = gateway_status(
        page="https://evil.example@192.168.1.20:8765/",
        push="javascript:alert(1)//:80/x",
        sensor_logger_topic="sensor-logger/#",
        token_required=False,
    )
    pub.publish(mqtt_client, "har/service/gateway/status", forged.to_payload(), retain=True)
    wait_until(lambda: "gateway" in conn.store.snapshot()["services"])
    at = app("phone")
    assert not at.exception
    shown = texts(at)
    assert "evil.example" not in shown and "javascript" not in shown
    assert "serves no phone page" in shown
    assert not shown_images(at)
    pub.publish(mqtt_client, "har/service/gateway/status", b"", retain=True)


def test_without_a_phone_gateway_the_page_says_how_to_start_one(dashboard_settings, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HAR_TOPIC_ROOT", "har-nophone")
    at = app("phone")
    assert not at.exception
    assert "har up --phone" in texts(at)
