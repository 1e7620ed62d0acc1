"""The pure supervision policy of ``har up``: backoff, restarts, online detection, stopping,
and the command lines it refuses before starting anything."""

from __future__ import annotations

import argparse

import pytest

from imu_har.ops.preflight import refusal
from imu_har.ops.supervisor import RestartPolicy, State, Supervisor, build_parser, plan


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(initial=1.0, factor=2.0, max_delay=10.0)
    assert [policy.delay(n) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.delay(10_000) == 10.0  # no overflow for long crash streaks


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1.0}, {"factor": 0.5}, {"max_delay": 0.1}, {"max_failures": 0}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]


def test_pending_services_are_due_in_order_and_start() -> None:
    sup = Supervisor(["gateway", "windower"])
    assert sup.due(0.0) == ["gateway", "windower"]
    sup.started("gateway", 10, 0.0)
    sup.started("windower", 11, 0.0)
    assert sup.due(0.0) == []
    assert sup.waiting_for() == ["gateway", "windower"]
    assert sup.online("gateway", 1.0, started_at=0.2)
    assert not sup.online("gateway", 1.5, started_at=0.2)  # not news twice
    assert sup["gateway"].state is State.ONLINE and sup.waiting_for() == ["windower"]
    assert not sup.all_online()
    sup.online("windower", 2.0)
    assert sup.all_online()


def test_a_crash_is_restarted_after_growing_backoff_and_counted() -> None:
    sup = Supervisor(["classifier"], RestartPolicy(initial=1.0, factor=2.0, stable_after=30.0))
    sup.started("classifier", 100, 0.0)
    assert sup.exited("classifier", -9, 2.0) == 1.0
    assert sup["classifier"].state is State.BACKOFF and sup["classifier"].pid is None
    assert sup.due(2.5) == []
    assert sup.due(3.0) == ["classifier"]
    sup.restarting("classifier")
    sup.started("classifier", 101, 3.0)
    assert sup.exited("classifier", 1, 4.0) == 2.0  # second failure in a row waits longer
    sup.restarting("classifier")
    sup.started("classifier", 102, 6.0)
    assert sup["classifier"].restarts == 2
    # a long healthy run forgets the streak: the next crash waits the initial delay again
    assert sup.exited("classifier", 1, 6.0 + 31.0) == 1.0
    assert sup["classifier"].last_exit == 1


def test_gives_up_after_max_failures() -> None:
    sup = Supervisor(["recorder"], RestartPolicy(initial=0.0, max_failures=2))
    sup.started("recorder", 1, 0.0)
    assert sup.exited("recorder", 1, 0.1) == 0.0
    sup.restarting("recorder")
    sup.started("recorder", 2, 0.1)
    assert sup.exited("recorder", 1, 0.2) is None
    assert sup["recorder"].state is State.FAILED
    assert sup.due(100.0) == []


def test_a_retained_status_of_an_earlier_process_is_not_online() -> None:
    sup = Supervisor(["windower"])
    sup.started("windower", 7, 1000.0)
    assert not sup.online("windower", 1000.5, started_at=900.0)
    assert sup["windower"].state is State.STARTING
    assert sup.online("windower", 1001.0, started_at=1000.3)


def test_stopping_restarts_nothing() -> None:
    sup = Supervisor(["gateway", "dashboard"])
    sup.started("gateway", 1, 0.0)
    sup.stop_all()
    assert sup["dashboard"].state is State.STOPPED  # never started: nothing to wait for
    assert sup.exited("gateway", 0, 1.0) is None
    assert sup["gateway"].state is State.STOPPED
    assert sup.due(10.0) == []
    assert [s["state"] for s in sup.snapshot()] == ["stopped", "stopped"]


def test_names_must_be_unique() -> None:
    with pytest.raises(ValueError):
        Supervisor(["gateway", "gateway"])


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_plan_runs_every_service_with_the_agreed_commands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    specs = plan(_args("--devices", "2", "--data-dir", str(tmp_path)), tmp_path / "model")
    commands = {s.name: s.args for s in specs}
    assert list(commands) == [
        "gateway", "windower", "classifier", "workout", "recorder", "trainer", "dashboard"
    ]  # fmt: skip
    assert commands["gateway"] == ["--source", "sim", "--devices", "2"]
    assert commands["classifier"] == ["--model", str(tmp_path / "model")]
    assert commands["workout"] == []  # sets and repetitions: started by default
    assert commands["recorder"] == ["--data-dir", str(tmp_path)]
    # the trainer writes into the classifier's reload root (the served model's parent)
    assert commands["trainer"] == ["--data-dir", str(tmp_path), "--models-dir", str(tmp_path)]
    assert commands["dashboard"][:2] == ["--port", "8501"]
    dashboard = specs[-1]
    assert dashboard.health_url == "http://127.0.0.1:8501/_stcore/health"


def test_plan_disables_parts_and_passes_extra_flags_through() -> None:
    extra = ["--windower-args", "--hop 10 --length 40"]
    off = ["--no-dashboard", "--no-recorder", "--no-trainer", "--no-workout"]
    args = _args("--source", "ble", *off, *extra)
    specs = plan(args, None)  # no model: no classifier
    assert [s.name for s in specs] == ["gateway", "windower"]
    assert specs[0].args == ["--source", "ble"]  # --devices is for simulated wearables only
    assert specs[1].args == ["--hop", "10", "--length", "40"]


def test_plan_passes_the_sim_style_to_simulated_wearables_only() -> None:
    realistic = plan(_args("--sim-style", "realistic", "--no-dashboard"), None)
    assert realistic[0].args == ["--source", "sim", "--devices", "3", "--sim-style", "realistic"]
    assert "workout" in [s.name for s in realistic]  # counts the realistic sets
    ble = plan(_args("--source", "ble", "--sim-style", "realistic"), None)
    assert ble[0].args == ["--source", "ble"]
    with pytest.raises(SystemExit):
        _args("--sim-style", "lazy")


def test_a_dashboard_beyond_loopback_needs_a_login(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """It refuses to start without one; har up used to restart it forever."""
    users = tmp_path / "users"
    users.write_text("admin:scrypt$...\n")
    network = ("--dashboard-address", "0.0.0.0")
    message = refusal(_args(*network), {})
    assert message and "--auth-file" in message and "\n" not in message
    for loopback in ("127.0.0.1", "::1", "localhost"):
        assert refusal(_args("--dashboard-address", loopback), {}) is None
    assert refusal(_args(*network, "--no-dashboard"), {}) is None
    assert refusal(_args(*network), {"HAR_AUTH_FILE": str(users)}) is None
    assert refusal(_args(*network, "--dashboard-args", f"--auth-file {users}"), {}) is None
    assert refusal(_args(*network, f"--dashboard-args=--auth-file={users}"), {}) is None
    missing = refusal(_args(*network, "--dashboard-args", f"--auth-file {tmp_path / 'x'}"), {})
    assert missing and "does not exist" in missing
    assert refusal(_args(*network, "--dashboard-args=--allow-anonymous"), {}) is None
    assert refusal(_args(*network), {"HAR_ALLOW_ANONYMOUS": "true"}) is None
    assert refusal(_args(*network), {"HAR_ALLOW_ANONYMOUS": "false"}) is not None
    last = "--allow-anonymous --no-allow-anonymous"  # the last one wins, as in the dashboard
    assert refusal(_args(*network, "--dashboard-args", last), {}) is not None
    # --dashboard-args come last on the dashboard's command line: their --address wins
    assert refusal(_args("--dashboard-args", "--address 0.0.0.0"), {}) is not None
    assert refusal(_args(*network, "--dashboard-args", "--address 127.0.0.1"), {}) is None
    help_text = " ".join(build_parser().format_help().split())
    assert "needs a login: --dashboard-args '--auth-file FILE' or HAR_AUTH_FILE" in help_text


@pytest.mark.parametrize("root", ["har/#", "har/+/x", "har\nnext", "/har", "", "har root"])
def test_an_invalid_topic_root_is_one_line(root: str) -> None:
    for args, env, source in [
        (_args("--topic-root", root), {}, "--topic-root"),
        (_args(), {"HAR_TOPIC_ROOT": root}, "HAR_TOPIC_ROOT"),
    ]:
        message = refusal(args, env)
        if source == "HAR_TOPIC_ROOT" and root == "":
            assert message is None  # empty: the default root, as for every service
            continue
        assert message and message.startswith(f"{source}: topic root ") and "\n" not in message


def test_valid_topic_roots_and_bad_quotes() -> None:
    assert refusal(_args(), {"HAR_TOPIC_ROOT": "gym/floor-1"}) is None
    assert refusal(_args("--topic-root", "gym"), {"HAR_TOPIC_ROOT": "har/#"}) is None
    message = refusal(_args("--gateway-args", "--file 'a b"), {})
    assert message and message.startswith("--gateway-args: ")
