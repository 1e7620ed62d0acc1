"""The whole loop in a real headless Chromium against the real services (issue 16).

Real ``har`` services as subprocesses on a private Mosquitto: the simulator
gateway (two wearers), windower, classifier (serving a copy of the demo model
from the test's models directory, its reload root), recorder, trainer and
``har dashboard`` on loopback. In Chromium: two labels are recorded from the
two wearers on the Record page, a small model is trained on them on the Train
page, activated on the Models page, and the Live page shows predictions
carrying the new model's version (checked on the broker too). Screenshots go to
test-output/loop/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from imu_har.ops.broker import MosquittoBroker, free_port
from imu_har.protocol.model_spec import SPEC_FILE
from tests.support.processes import stop_process, wait_http
from tests.support.system import DEFAULT_MODEL, REPO, Observer, System, running_system

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow, pytest.mark.tf]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
SHOTS = REPO / "test-output" / "loop"
WEARERS = {"sim-001": "s1", "sim-002": "s2"}
SECONDS = 14  # per session: ~30 windows of the demo model's 2 s window, hop 0.4 s


@pytest.fixture()
def dashboard(broker: MosquittoBroker, tmp_path: Path) -> Iterator[str]:
    """``har dashboard`` on loopback (no login needed there); its URL."""
    port = free_port()
    har = Path(sys.executable).with_name("har")
    assert har.exists(), f"{har} missing: pip install -e . first"
    log = tmp_path / "dashboard.log"
    args = [str(har), "dashboard", f"--mqtt-host={broker.host}", f"--mqtt-port={broker.port}"]
    args += [f"--port={port}", f"--data-dir={tmp_path / 'data'}", "--refresh=1"]
    args += [f"--models-dir={tmp_path / 'models'}"]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_stcore/health", lambda: log.read_text()[-3000:])
        yield url
    finally:
        stop_process(process)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def go(page: Page, title: str) -> None:
    page.get_by_role("link", name=title, exact=True).first.click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=30_000)


def choose(page: Page, box: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``box``."""
    page.get_by_test_id("stSelectbox").filter(has_text=box).locator("input").click()
    page.get_by_role("option", name=option, exact=True).click()


def fill(page: Page, label: str, value: str) -> None:
    """Type into a text or number input and commit it (Enter), as a user does."""
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Enter")
    page.wait_for_timeout(300)


def record(page: Page, label: str) -> None:
    """Start a ``SECONDS`` recording of ``label`` for each wearer (they stop by themselves)."""
    for device, subject in WEARERS.items():
        choose(page, "Device", device)
        choose(page, "Exercise label", label)
        fill(page, "Subject", subject)
        fill(page, "Stop automatically after (s, 0 = never)", str(SECONDS))
        page.get_by_role("button", name="Start recording").click()
        expect(page.get_by_text(re.compile("Recorder: start ok"))).to_be_visible(timeout=20_000)
        expect(page.get_by_test_id("stMetric").filter(has_text="Recording")).to_contain_text(
            device, timeout=20_000
        )


def finished(data: Path, label: str) -> int:
    """Finished sessions of ``label`` on disk."""
    manifests = [json.loads(p.read_text()) for p in (data / "sessions").glob("*.json")]
    return sum(m["label"] == label and m["stop_reason"] == "time_limit" for m in manifests)


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


@pytest.mark.timeout(1200)
def test_record_train_activate_and_predict_in_the_browser(
    broker: MosquittoBroker, tmp_path: Path, dashboard: str
) -> None:
    assert CHROMIUM.exists(), "Chromium missing: apt-get install -y chromium (or make system-test)"
    data, models = tmp_path / "data", tmp_path / "models"
    shutil.copytree(DEFAULT_MODEL, models / "default")  # the reload root holds the demo too
    with running_system(broker, tmp_path) as (observer, system):
        start_services(system, data, models)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(dashboard)
            expect(page.get_by_role("heading", name="Live")).to_be_visible(timeout=30_000)
            go(page, "Record")
            record(page, "Squat")
            shot(page, "record")
            wait_for(lambda: finished(data, "Squat") == 2, 60, "Squat sessions not finished")
            # The same two wearers (same seed and ids) now jump.
            system.services["gateway"].stop()
            gateway(system, "Jumping")
            page.reload()
            expect(page.get_by_role("heading", name="Record")).to_be_visible(timeout=30_000)
            record(page, "Jumping")
            wait_for(lambda: finished(data, "Jumping") == 2, 60, "Jumping sessions not finished")
            version = train(page, models)
            activate(page, version)
            see_predictions(page, observer, version)
            assert not page.get_by_test_id("stException").count()
            browser.close()
        system.stop_cleanly()


def start_services(system: System, data: Path, models: Path) -> None:
    system.start("windower")
    system.start("classifier", "--model", str(models / "default"))  # reload root: models/
    system.start("recorder", "--data-dir", str(data), "--no-fsync")
    system.start("trainer", "--data-dir", str(data), "--models-dir", str(models))
    gateway(system, "Squat")


def gateway(system: System, label: str) -> None:
    system.start(
        "gateway", "--source", "sim", "--devices", "2", "--schedule", f"{label}:3600", "--seed", "7"
    )


def train(page: Page, models: Path) -> str:
    """Train a small model on every session; the new artifact's version."""
    go(page, "Train")
    per_label = page.get_by_test_id("stDataFrame").first
    expect(per_label).to_contain_text("Squat", timeout=30_000)
    expect(per_label).to_contain_text("Jumping")
    fill(page, "Epochs", "3")
    fill(page, "Units", "8")
    fill(page, "Model name", "loop")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=30_000)
    shot(page, "train")
    refused = page.get_by_text(re.compile("Trainer refused|Training failed"))
    ready = page.get_by_text(re.compile("Model ready"))
    expect(ready.or_(refused)).to_be_visible(timeout=600_000)
    assert not refused.count(), refused.first.inner_text()
    shot(page, "trained")
    (artifact,) = [p for p in models.iterdir() if p.name.startswith("loop-")]
    spec = json.loads((artifact / SPEC_FILE).read_text())
    assert sorted(spec["labels"]) == ["Jumping", "Squat"]
    assert spec["metrics"]["cv"]["grouping"] == "subject"
    return str(spec["version"])


def activate(page: Page, version: str) -> None:
    go(page, "Models")
    expect(page.get_by_text(re.compile(r"From the trainer"))).to_be_visible(timeout=30_000)
    expect(page.get_by_text(version[:12]).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Grouped-validation confusion matrix")).to_be_visible()
    shot(page, "models")
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_text(re.compile("Classifier: activate ok"))).to_be_visible(timeout=120_000)
    expect(page.get_by_text("This model is live.")).to_be_visible(timeout=30_000)


def see_predictions(page: Page, observer: Observer, version: str) -> None:
    observer.wait(
        lambda: any(
            p.model_version == version for ps in observer.predictions.values() for p, _ in ps
        ),
        60,
        f"no prediction of model version {version}",
    )
    go(page, "Live")
    expect(page.get_by_text(re.compile(f"version {version[:12]}")).first).to_be_visible(
        timeout=60_000
    )
    shot(page, "live")
