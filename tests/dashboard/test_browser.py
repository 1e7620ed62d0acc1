"""End to end in a real headless Chromium: `har dashboard` while the system streams.

Runs the real simulator gateway, windower and recorder as subprocesses on the
private broker; a small stand-in classifier turns every window into a
prediction (a trained model would make this test slow). The dashboard requires
a login (``--auth-file``): the browser is refused with a wrong password, logs
in through the real page, checks that live values appear, starts and stops a
recording from the Record page, and logs out. Screenshots go to
test-output/dashboard/.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from imu_har.ops.broker import MosquittoBroker, free_port
from imu_har.protocol import topics
from imu_har.protocol.codec import decode_window
from imu_har.protocol.messages import GroundTruth, Prediction
from imu_har.runtime.client import Collector, connect
from tests.support import publish as pub
from tests.support.dashboard import REPO, USERS, wait_until, write_auth_file
from tests.support.processes import wait_http, wait_stopped

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "test-output" / "dashboard"


class Processes:
    """Subprocesses of one test, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as out:
            process = subprocess.Popen(list(args), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.running.append((name, process))
        return process

    def stop(self) -> None:
        for _, process in reversed(self.running):
            process.terminate()
        for _, process in self.running:
            wait_stopped(process)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]


@pytest.fixture()
def procs(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    yield running
    running.stop()


def stand_in_classifier(client: mqtt.Client) -> None:
    """Answer each window with a prediction of the device's current true label."""
    truth: dict[str, str] = {}

    def on_truth(_c, _u, msg):  # type: ignore[no-untyped-def]
        if msg.payload:
            value = GroundTruth.from_payload(msg.payload)
            truth[value.device] = value.label

    def on_window(c, _u, msg):  # type: ignore[no-untyped-def]
        window = decode_window(msg.payload)
        label = truth.get(window.device, "Squat")
        label = "Squat" if label == "rest" else label
        probs = dict.fromkeys([*pub.LABELS, label], 0.1)
        probs[label] = 0.7
        prediction = Prediction(
            device=window.device,
            window_seq=window.seq,
            window_start=window.start,
            window_end=window.end,
            label=label,
            confidence=0.7,
            probabilities=probs,
            smoothed_label=label,
            model="stand-in",
            model_version="0" * 12,
            latency_ms=1.5,
            source_time=window.source_time,
            classified_at=time.time(),
        )
        c.publish(topics.PREDICTION.format("har", device=window.device), prediction.to_payload())

    client.message_callback_add("har/+/truth", on_truth)
    client.message_callback_add("har/+/window", on_window)
    client.subscribe([("har/+/truth", 1), ("har/+/window", 0)])


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def go(page: Page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=20_000)


def test_dashboard_in_chromium_live_values_and_recording(
    broker: MosquittoBroker, procs: Processes, tmp_path: Path
) -> None:
    assert CHROMIUM.exists(), "Chromium missing: apt-get install -y chromium (or make system-test)"
    har = Path(sys.executable).with_name("har")
    assert har.exists(), f"{har} missing: pip install -e . first"
    mqtt_args = [f"--mqtt-host={broker.host}", f"--mqtt-port={broker.port}"]
    data_dir = tmp_path / "data"
    py = sys.executable
    client = connect(broker.host, broker.port)
    frames = Collector(client, "har/+/imu", qos=0)
    stand_in_classifier(client)
    procs.start("windower", py, "-m", "services.windower", *mqtt_args, "--status-interval=1")
    procs.start(
        "recorder",
        py,
        "-m",
        "services.recorder",
        *mqtt_args,
        f"--data-dir={data_dir}",
        "--status-interval=0.5",
        "--no-fsync",
    )
    procs.start(
        "gateway",
        py,
        "-m",
        "services.ble_gateway",
        *mqtt_args,
        "--source=sim",
        "--devices=1",
        "--schedule=Squat:600",
        "--status-interval=1",
    )
    pub.publish(client, "har/model/spec", pub.model_spec().to_payload(), retain=True)
    frames.wait_for(5, timeout=30)
    assert frames.messages, procs.log("gateway")
    device = frames.messages[0].topic.split("/")[1]
    port = free_port()
    users = write_auth_file(tmp_path / "users.auth", USERS)
    dashboard = procs.start(
        "dashboard",
        str(har),
        "dashboard",
        *mqtt_args,
        f"--port={port}",
        f"--data-dir={data_dir}",
        "--refresh=1",
        f"--auth-file={users}",
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_stcore/health", lambda: procs.log("dashboard"))
    assert f"imu-har dashboard: {url}" in procs.log("dashboard")
    assert dashboard.poll() is None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            log_in(page, url, procs)
            run_pages(page, device, data_dir, procs)
            log_out(page)
            browser.close()
    finally:
        pub.publish(client, "har/model/spec", b"", retain=True)
        client.loop_stop()
        client.disconnect()


def submit_login(page: Page, user: str, password: str) -> None:
    page.get_by_label("User name", exact=True).fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def log_in(page: Page, url: str, procs: Processes) -> None:
    """A deep link before the login gets the login page only; a wrong password is refused."""
    page.goto(f"{url}/record")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("dialog")).to_contain_text("Page not found")  # not offered
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert not page.get_by_role("button", name="Start recording").count()
    assert not page.get_by_role("link", name="Sessions").count()
    submit_login(page, "alice", USERS["bob"])
    expect(page.get_by_text("Wrong user name or password.")).to_be_visible(timeout=20_000)
    shot(page, "login")
    assert not page.get_by_role("button", name="Start recording").count()
    submit_login(page, "alice", USERS["alice"])
    expect(page.get_by_role("button", name="Log out")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Logged in as alice")).to_be_visible()
    assert "dashboard login: user 'alice'" in procs.log("dashboard")
    assert "dashboard login failed for user 'alice'" in procs.log("dashboard")
    go(page, "Live")


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("link", name="Record")).to_have_count(0)
    page.reload()  # a new browser session of the same tab: still the login page
    expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=20_000)


def run_pages(page: Page, device: str, data_dir: Path, procs: Processes) -> None:
    """Live values, a recording started and stopped, then sessions, model and system."""
    expect(page.get_by_text(device).first).to_be_visible(timeout=30_000)
    exercise = page.get_by_test_id("stMetric").filter(has_text="Exercise")
    expect(exercise).to_contain_text("Squat", timeout=30_000)
    expect(page.get_by_test_id("stMetric").filter(has_text="Live accuracy")).to_contain_text(
        re.compile(r"\d+%"), timeout=30_000
    )
    expect(page.get_by_test_id("stMetric").filter(has_text="Frames/s")).to_contain_text(
        re.compile(r"[1-9]\d*\.\d"), timeout=15_000
    )
    page.wait_for_timeout(1500)  # let the plots fill a little
    shot(page, "live")

    go(page, "Record")
    subject = page.get_by_label("Subject")
    subject.fill("s42")
    subject.press("Enter")
    page.get_by_role("button", name="Start recording").click()
    expect(page.get_by_text(re.compile("Recorder: start ok"))).to_be_visible(timeout=20_000)
    rows = page.get_by_test_id("stMetric").filter(has_text="Rows")
    expect(rows).to_contain_text(re.compile(r"\d{3,}"), timeout=30_000)
    expect(page.get_by_test_id("stMetric").filter(has_text="Recording")).to_contain_text(device)
    shot(page, "record")
    page.get_by_role("button", name="Stop recording").click()
    expect(page.get_by_text(re.compile("Recorder: stop ok"))).to_be_visible(timeout=20_000)
    wait_until(lambda: any((data_dir / "sessions").glob("*.json")), timeout=20)
    manifests = list((data_dir / "sessions").glob("*.json"))
    assert len(manifests) == 1, procs.log("recorder")
    assert '"subject": "s42"' in manifests[0].read_text()

    go(page, "Sessions")
    expect(page.get_by_text(f"{device} · Pushup · subject s42")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("button", name="Download Parquet")).to_be_visible()
    page.wait_for_timeout(1000)
    shot(page, "sessions")

    go(page, "Model")
    expect(page.get_by_text("bilstm-test").first).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Confusion matrix")).to_be_visible()
    page.wait_for_timeout(1000)
    shot(page, "model")

    go(page, "System")
    for name in ("windower", "recorder", "gateway"):
        expect(page.get_by_text(re.compile(f"{name} — online"))).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("stMetric").filter(has_text="Connection")).to_contain_text(
        "connected"
    )
    shot(page, "system")
    assert not page.get_by_test_id("stException").count()
