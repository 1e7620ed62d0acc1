"""Login file, password hashes, the line generator, throttling and the start-up refusal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys

import pytest

from imu_har.ops.broker import free_port
from imu_har.ops.supervisor import build_parser, plan
from services.dashboard import auth
from services.dashboard.app import main
from services.dashboard.settings import SETTINGS_ENV
from tests.support.dashboard import REPO, write_auth_file


def generate(user: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.dashboard.auth", user],
        input=password + "\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_the_generator_prints_a_line_that_verifies():
    done = generate("alice", "correct horse battery")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    user, _, hashed = line.partition(":")
    scheme, n, r, p, salt, key = hashed.split("$")
    assert (user, scheme, n, r, p) == ("alice", "scrypt", "16384", "8", "1")
    salt_bytes, key_bytes = base64.b64decode(salt, validate=True), base64.b64decode(key)
    assert len(salt_bytes) == 16 and len(key_bytes) == 32
    # recomputed here with hashlib alone: the format is the agreed one, not just self-consistent
    again = hashlib.scrypt(b"correct horse battery", salt=salt_bytes, n=16384, r=8, p=1, dklen=32)
    assert hmac.compare_digest(again, key_bytes)
    users = auth.parse_users([line])
    assert users.verify("alice", "correct horse battery")
    assert not users.verify("alice", "correct horse batter")
    assert not users.verify("bob", "correct horse battery")
    assert generate("alice", "correct horse battery").stdout != done.stdout  # a fresh salt


@pytest.mark.parametrize(("user", "password"), [("a:b", "pw"), ("", "pw"), ("alice", "")])
def test_the_generator_refuses_bad_names_and_empty_passwords(user, password):
    done = generate(user, password)
    assert done.returncode == 2 and not done.stdout and "services.dashboard.auth" in done.stderr


GOOD = auth.credential_line("alice", "pw")
HASH = GOOD.removeprefix("alice")  # ":scrypt$..."


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("carol", "expected user:scrypt"),
        ("carol:hunter2", "expected user:scrypt"),
        ("car ol" + HASH, "user name"),
        ("carol" + HASH.replace("scrypt", "bcrypt"), "expected"),
        ("carol" + HASH.replace("$16384$", "$1000$"), "power of two"),
        ("carol" + HASH.replace("$16384$", "$1073741824$"), "power of two"),
        ("carol" + HASH.replace("$8$1$", "$64$16$"), "memory"),
        ("carol" + HASH.replace("$8$", "$x$"), "integers"),
        ("carol" + HASH[:-2] + "!!", "base64"),
        ("carol" + HASH.rsplit("$", 1)[0] + "$QUJD", "key 16-64 bytes"),
        ("carol" + HASH + "\ncarol" + HASH, "repeats"),
    ],
    ids=lambda value: value.split("$", 1)[0],  # no random salt in ids (same tests everywhere)
)
def test_a_malformed_line_names_its_number_never_its_content(tmp_path, line, problem):
    path = tmp_path / "users"
    path.write_text(f"# users\n\n{GOOD}\n{line}\n")
    with pytest.raises(auth.AuthFileError) as err:
        auth.load_users(path)
    message = str(err.value)
    assert f"{path}, line 4" in message or f"{path}, line 5" in message
    assert problem in message
    assert "hunter2" not in message and GOOD.split("$")[-1] not in message


def test_comments_blank_lines_and_an_empty_or_missing_file(tmp_path):
    path = write_auth_file(tmp_path / "users", {"alice": "pw", "bob": "pw2"})
    users = auth.load_users(path)
    assert len(users) == 2 and "alice" in users and users.verify("bob", "pw2")
    (tmp_path / "empty").write_text("# nobody yet\n\n")
    with pytest.raises(auth.AuthFileError, match="no user line"):
        auth.load_users(tmp_path / "empty")
    with pytest.raises(auth.AuthFileError, match="cannot read auth file"):
        auth.load_users(tmp_path / "missing")


def test_overlong_passwords_are_refused_before_hashing():
    users = auth.parse_users([GOOD])
    assert not users.verify("alice", "x" * (auth.MAX_PASSWORD + 1))
    assert not users.verify("alice", "\ud800")  # a lone surrogate: refused, no crash


def test_throttle_window_success_and_bounded_keys():
    throttle = auth.Throttle(failures=3, window=60, max_keys=4)
    keys = [("session", "s1"), ("user", "alice")]
    for t in (0, 1, 2):
        assert throttle.retry_after(keys, t) == 0
        throttle.failed(keys, t)
    assert throttle.retry_after(keys, 3) == 57  # until the oldest failure leaves the window
    assert throttle.retry_after([("user", "alice")], 30) == 30
    assert throttle.retry_after([("user", "bob")], 3) == 0
    assert throttle.retry_after(keys, 60) == 0
    throttle.failed(keys, 61)
    assert throttle.retry_after(keys, 62) == 0  # 1, 2 and 61 in the window: two of them live
    throttle.succeeded(keys)
    assert len(throttle) == 0
    for n in range(100):  # a flood of user names stays within max_keys
        throttle.failed([("user", f"u{n}")], 100 + n / 10)
    assert len(throttle) == 4 and throttle.evicted == 96
    throttle.failed([("user", "late")], 10_000)  # expired keys go first, not counted as evicted
    assert len(throttle) == 1 and throttle.evicted == 96


@pytest.fixture()
def no_exec(monkeypatch):  # type: ignore[no-untyped-def]
    """``os.execve`` recorded instead of run; no ``HAR_*`` setting from outside."""
    for name in ("HAR_ADDRESS", "HAR_AUTH_FILE", "HAR_ALLOW_ANONYMOUS", SETTINGS_ENV):
        monkeypatch.delenv(name, raising=False)
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr("os.execve", lambda path, args, env: calls.append((args, env)))
    return calls


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.20", "dashboard.example"])
def test_refuses_to_serve_the_network_without_an_auth_file(no_exec, capsys, address):
    assert main(["--address", address]) == 2
    assert not no_exec
    assert "refusing to serve" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost"])
def test_loopback_needs_no_login(no_exec, address):
    assert main(["--address", address]) == 0
    assert len(no_exec) == 1


def test_allow_anonymous_or_an_auth_file_opens_the_network(no_exec, tmp_path, capsys):
    assert main(["--address", "0.0.0.0", "--allow-anonymous"]) == 0
    assert "no login" in capsys.readouterr().out
    path = write_auth_file(tmp_path / "users", {"alice": "pw"})
    assert main(["--address", "0.0.0.0", "--auth-file", str(path)]) == 0
    args, env = no_exec[-1]
    assert "--server.address=0.0.0.0" in args
    assert json.loads(env[SETTINGS_ENV])["auth_file"] == str(path)


def test_a_bad_auth_file_stops_the_start(no_exec, tmp_path, capsys):
    path = tmp_path / "users"
    path.write_text(f"{GOOD}\nbob:secret-in-clear\n")
    assert main(["--auth-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "secret-in-clear" not in err
    assert main(["--auth-file", str(tmp_path / "missing")]) == 2
    assert not no_exec


def test_a_bad_client_id_is_refused_at_start(no_exec, capsys):
    with pytest.raises(SystemExit):
        main(["--client-id", "dash/#"])
    assert "--client-id" in capsys.readouterr().err


def test_har_up_serves_the_dashboard_on_loopback_by_default():
    specs = {s.name: s.args for s in plan(build_parser().parse_args([]), None)}
    address = specs["dashboard"][specs["dashboard"].index("--address") + 1]
    assert address == "127.0.0.1"  # so `har up` needs no login and is refused nothing


def test_the_real_command_exits_at_once_on_the_network_without_login(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAR_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.dashboard", "--address=0.0.0.0", f"--port={free_port()}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("still running: it served the network without a login") from None
    assert process.returncode == 2 and "refusing to serve '0.0.0.0'" in err and not out
