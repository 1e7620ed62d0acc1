"""CPU priority by latency budget: ``--cpu-nice`` lowers a service's priority, all its threads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imu_har.runtime.client import Collector, connect

ROOT = Path(__file__).resolve().parents[2]
LOWER = (
    "from pathlib import Path; import sys\n"
    "from imu_har.runtime.priority import lower_priority\n"
    "print(lower_priority(int(sys.argv[1]), Path(sys.argv[2])))\n"
)


def _lower(nice: int, autogroup: Path, new_session: bool) -> int:
    done = subprocess.run(
        [sys.executable, "-c", LOWER, str(nice), str(autogroup)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, start_new_session=new_session,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_session_leader_lowers_its_autogroup_too(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 0\n")
    base = os.nice(0)
    assert _lower(3, group, new_session=True) == base + 3
    assert group.read_text() == f"{base + 3}\n"


def test_a_process_in_a_shared_session_leaves_the_autogroup_alone(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 0\n")
    assert _lower(4, group, new_session=False) == os.nice(0) + 4
    assert group.read_text() == "/autogroup-1 nice 0\n"  # the others' group: not ours


def test_nothing_to_lower_changes_nothing(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    assert _lower(0, group, new_session=True) == os.nice(0)
    assert not group.exists()


def _nice_of_threads(pid: int) -> list[int]:
    """The nice value of every thread of ``pid`` (field 19 of /proc/<pid>/task/<tid>/stat)."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        values.append(int(stat.rsplit(")", 1)[1].split()[16]))
    return values


@pytest.mark.broker
def test_the_workout_service_runs_every_thread_at_its_lower_priority(broker) -> None:  # type: ignore[no-untyped-def]
    """``har workout`` started as ``har up`` starts it (its own session): its process,
    its MQTT thread and its autogroup at nice 10 above ours."""
    client = connect(broker.host, broker.port)
    statuses = Collector(client, "har/service/workout/status")
    proc = subprocess.Popen(
        [sys.executable, "-m", "imu_har.ops.cli", "workout", "--mqtt-port", str(broker.port),
         "--status-interval", "1"],
        cwd=ROOT, start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("HAR_")},
    )  # fmt: skip
    try:
        assert statuses.wait_for(1, timeout=60), "the service never came online"
        deadline = time.monotonic() + 10
        while len(_nice_of_threads(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        threads = _nice_of_threads(proc.pid)
        assert len(threads) >= 2 and set(threads) == {os.nice(0) + 10}
        group = Path(f"/proc/{proc.pid}/autogroup")
        if group.exists():  # a kernel with autogroups
            assert group.read_text().split()[-1] == str(os.nice(0) + 10)
    finally:
        proc.terminate()
        proc.wait(30)
        client.disconnect()


@pytest.mark.parametrize("value", ["-1", "20", "x"])
def test_a_priority_out_of_range_stops_the_service_before_it_connects(value: str) -> None:
    """Raising a priority needs privileges and 19 is the lowest: anything else is a
    clear error at start, naming the setting."""
    done = subprocess.run(
        [sys.executable, "-m", "imu_har.ops.cli", "workout", "--cpu-nice", value,
         "--mqtt-port", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "cpu_nice" in done.stderr or "cpu-nice" in done.stderr
