"""deploy/mosquitto/make-passwd.sh: .env, broker password files, TLS certificate, dashboard login.

The files it writes are also used by the broker tests (test_acl.py,
test_broker_security.py), which show that Mosquitto accepts the hashes and the
certificate; here: what is written, with which modes, and what is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
from pathlib import Path

import pytest

from imu_har.ops.accounts import SERVICE_ACCOUNTS, account_names
from tests.support.deploy import LOGIN_PASSWORD, PASSWORDS, make_secrets, write_env

INTERNAL = [*SERVICE_ACCOUNTS, "monitor"]


def users_of(path: Path) -> list[str]:
    return [line.split(":", 1)[0] for line in path.read_text().splitlines()]


def test_a_fresh_env_gets_random_passwords_and_owner_only_secrets(tmp_path: Path) -> None:
    env_file, out = tmp_path / ".env", tmp_path / "deploy"
    make_secrets(env_file, out)
    text = env_file.read_text()
    assert "=change-me" not in text
    secrets = [line.split("=", 1)[1] for line in text.splitlines() if "_PASSWORD=" in line]
    assert len(secrets) == len(account_names()) + 1  # and the dashboard login
    assert len(set(secrets)) == len(secrets) and all(len(s) >= 16 for s in secrets)
    assert env_file.stat().st_mode & 0o077 == 0  # secrets readable by the owner only
    for secret in ("mosquitto/passwd", "mosquitto/passwd-services", "mosquitto/tls/server.key",
                   "tls-ca/ca.key"):  # fmt: skip
        assert (out / secret).stat().st_mode & 0o077 == 0, secret
    assert users_of(out / "mosquitto" / "passwd") == account_names()
    assert users_of(out / "mosquitto" / "passwd-services") == INTERNAL
    hashes = (out / "mosquitto" / "passwd").read_text()
    assert all(s not in hashes for s in secrets)


def test_broker_hashes_are_mosquittos_pbkdf2_of_the_env_passwords(tmp_path: Path) -> None:
    write_env(tmp_path / "env")
    make_secrets(tmp_path / "env", tmp_path / "out")
    for line in (tmp_path / "out" / "mosquitto" / "passwd").read_text().splitlines():
        user, hashed = line.split(":", 1)
        _, kind, rounds, salt, key = hashed.split("$")
        assert (kind, rounds) == ("7", "101")  # as mosquitto_passwd 2.0 writes it
        password = {**PASSWORDS, "wrist-1": "wrist-pass", "ankle-2": "ankle-pass"}[user]
        derived = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), 101, 64)
        assert base64.b64decode(salt).__len__() == 12 and derived == base64.b64decode(key), user


def test_the_dashboard_login_verifies_with_scrypt(tmp_path: Path) -> None:
    write_env(tmp_path / "env")
    make_secrets(tmp_path / "env", tmp_path / "out")
    users = tmp_path / "out" / "dashboard" / "users"
    assert users.stat().st_mode & 0o777 == 0o644  # the dashboard container reads it as uid 10001
    [line] = users.read_text().splitlines()
    user, hashed = line.split(":", 1)
    scheme, n, r, p, salt_b64, key_b64 = hashed.split("$")
    assert (user, scheme, n, r, p) == ("admin", "scrypt", "16384", "8", "1")
    salt, key = base64.b64decode(salt_b64, validate=True), base64.b64decode(key_b64, validate=True)
    assert len(salt) == 16 and len(key) == 32
    assert base64.b64encode(salt).decode() == salt_b64  # standard base64 with padding

    def derive(password: str) -> bytes:
        return hashlib.scrypt(password.encode(), salt=salt, n=16384, r=8, p=1, dklen=32)

    assert hmac.compare_digest(derive(LOGIN_PASSWORD), key)
    assert not hmac.compare_digest(derive(LOGIN_PASSWORD + "x"), key)


def test_accounts_added_by_an_upgrade_get_a_password_and_the_rest_stays(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    write_env(env_file)
    old = [line for line in env_file.read_text().splitlines() if "WORKOUT" not in line]
    env_file.write_text("\n".join(old) + "\n")
    result = make_secrets(env_file, tmp_path / "out")
    assert "added HAR_WORKOUT_PASSWORD" in result.stderr
    lines = env_file.read_text().splitlines()
    assert lines[: len(old)] == old
    [added] = [line for line in lines if line.startswith("HAR_WORKOUT_PASSWORD=")]
    assert len(added.split("=", 1)[1]) >= 16
    assert "workout" in users_of(tmp_path / "out" / "mosquitto" / "passwd")


@pytest.mark.parametrize(
    "bad",
    [
        "HAR_GATEWAY_PASSWORD=change-me",
        "HAR_GATEWAY_PASSWORD=",
        "HAR_DASHBOARD_LOGIN_PASSWORD=",
        'HAR_DEVICE_USERS="nopass"',
        'HAR_DEVICE_USERS="monitor:x"',  # an account name
        'HAR_DEVICE_USERS="Recorder:x"',  # a reserved topic level
        'HAR_DEVICE_USERS="a..b:x"',
        'HAR_DEVICE_USERS="-x:y"',
        'HAR_DEVICE_USERS="har/+/imu:y"',
    ],
)
def test_unusable_passwords_and_device_ids_are_refused(tmp_path: Path, bad: str) -> None:
    env_file = tmp_path / ".env"
    write_env(env_file)
    key = bad.split("=", 1)[0]
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith(key)]
    env_file.write_text("\n".join([*lines, bad]) + "\n")
    result = make_secrets(env_file, tmp_path / "out", check=False)
    assert result.returncode == 1
    assert "make-passwd:" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def san(cert: Path) -> str:
    text = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return text.splitlines()[-1].strip()


def verifies(cert: Path, ca: Path) -> bool:
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), str(cert)], capture_output=True, check=False
    )
    return result.returncode == 0


def test_the_certificate_follows_the_hostnames_and_keeps_its_ca(tmp_path: Path) -> None:
    env_file, out = tmp_path / ".env", tmp_path / "out"
    tls = out / "mosquitto" / "tls"
    write_env(env_file, hostnames="localhost 127.0.0.1 gym-pi")
    make_secrets(env_file, out)
    assert san(tls / "server.crt") == "DNS:localhost, IP Address:127.0.0.1, DNS:gym-pi"
    assert verifies(tls / "server.crt", tls / "ca.crt")
    first, ca = (tls / "server.crt").read_bytes(), (tls / "ca.crt").read_bytes()
    make_secrets(env_file, out)  # nothing changed: nothing reissued
    assert (tls / "server.crt").read_bytes() == first
    write_env(env_file, hostnames="gym-pi 192.168.1.20")
    make_secrets(env_file, out)
    assert san(tls / "server.crt") == "DNS:gym-pi, IP Address:192.168.1.20"
    assert (tls / "ca.crt").read_bytes() == ca  # wearables keep trusting the same CA
    assert verifies(tls / "server.crt", tls / "ca.crt")


def test_a_certificate_you_brought_is_left_alone(tmp_path: Path) -> None:
    tls = tmp_path / "out" / "mosquitto" / "tls"
    tls.mkdir(parents=True)
    (tls / "server.crt").write_text("mine\n")
    (tls / "server.key").write_text("my key\n")
    write_env(tmp_path / ".env")
    result = make_secrets(tmp_path / ".env", tmp_path / "out")
    assert "keeping your own certificate" in result.stderr
    assert (tls / "server.crt").read_text() == "mine\n"
    assert not (tmp_path / "out" / "tls-ca").exists()
