"""The phone page in a real headless Chromium: synthetic ``devicemotion`` events become frames on
the broker, and the predictions for the phone come back to the page.

The page is served over HTTPS with the certificate the gateway generates on
first run (Chromium is told to accept it, as a user does once on the phone).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect, sync_playwright

from imu_har.ops.broker import free_port
from imu_har.protocol.codec import decode_frame
from imu_har.protocol.messages import DeviceStatus
from imu_har.runtime.client import Collector
from services.ble_gateway.app import GatewaySettings, build
from tests.support.publish import prediction

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(180)]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "gateway"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TOKEN = "page-test-token-0123456789"  # noqa: S105 (a test's own token)
# One event every 10 ms for 3 s: still, then turning (accelerationIncludingGravity m/s^2, deg/s).
MOTION = """
() => new Promise((done) => {
  let k = 0;
  const timer = setInterval(() => {
    const turning = k >= 150;
    window.dispatchEvent(new DeviceMotionEvent("devicemotion", {
      accelerationIncludingGravity: {x: 0.5 * 9.80665, y: -0.25 * 9.80665, z: 9.80665},
      rotationRate: turning ? {alpha: 30, beta: 10, gamma: 20} : {alpha: 0, beta: 0, gamma: 0},
      interval: 10,
    }));
    if (++k === 300) { clearInterval(timer); done(k); }
  }, 10);
})
"""


def test_the_phone_page_streams_motion_and_shows_predictions(  # type: ignore[no-untyped-def]
    broker, run_service, mqtt_client, tmp_path
):
    assert CHROMIUM.exists(), "Chromium missing: apt-get install -y chromium (or make system-test)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    frames = Collector(mqtt_client, "har/page-test/imu")
    statuses = Collector(mqtt_client, "har/page-test/status")
    https = free_port()
    settings = GatewaySettings(
        mqtt_port=broker.port,
        source="phone",
        phone_host="127.0.0.1",
        phone_https_port=https,
        phone_http_port=0,
        phone_dir=tmp_path / "phone",
        phone_token=TOKEN,
        status_interval=0.5,
    )
    run_service(*build(settings))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(f"https://127.0.0.1:{https}/?token={TOKEN}&device=page-test")
        page.get_by_role("button", name="Start").click()
        expect(page.locator("#state")).to_have_text("streaming as page-test", timeout=10_000)
        assert page.evaluate(MOTION) == 300
        got = frames.wait_for(
            predicate=lambda ms: (
                sum(len(decode_frame(bytes(m.payload)).samples) for m in ms) >= 290
            ),
            timeout=15,
        )
        decoded = [decode_frame(bytes(m.payload)) for m in got]
        assert {f.channels for f in decoded} == {
            ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
        }  # no magnetometer in a headless browser: the channels it has
        samples = np.concatenate([f.samples for f in decoded])
        np.testing.assert_allclose(samples[:, :3], [[0.5, -0.25, 1.0]] * len(samples), atol=1e-5)
        # rotationRate beta, gamma, alpha are about x, y, z (W3C): deg/s, through rad/s and back
        np.testing.assert_allclose(samples[:150, 3:], 0.0, atol=1e-4)
        np.testing.assert_allclose(samples[-100:, 3:], [[10, 20, 30]] * 100, atol=1e-4)
        rates = [f.rate for f in decoded if len(f.samples) > 20]
        assert rates and all(40 < r < 250 for r in rates), rates  # ~100 Hz, whatever the timers do
        expect(page.locator("#sensors")).to_have_text("gyroscope, totalacceleration")
        status = DeviceStatus.from_payload(bytes(statuses.wait_for()[-1].payload))
        assert status.source == "phone" and status.address == "page"
        # the classifier's prediction for this phone is shown on the page
        deadline = time.monotonic() + 15
        while page.locator("#prediction").text_content() != "Squat":
            assert time.monotonic() < deadline, "the prediction never reached the page"
            mqtt_client.publish("har/page-test/prediction", prediction("page-test", 1).to_payload())
            page.wait_for_timeout(300)
        expect(page.locator("#confidence")).to_have_text("0.80")
        page.screenshot(path=str(SHOTS / "phone-page.png"))
        browser.close()
