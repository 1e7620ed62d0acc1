"""Dashboard logins: scrypt password lines, the login file, failed-attempt throttling.

Pure (no Streamlit): ``har dashboard`` reads the file at start-up (a malformed
line stops it), the login page verifies passwords against it, and

    python -m services.dashboard.auth USER      # password on stdin

prints a line for the file. One user a line; blank lines and ``#`` comments
are ignored::

    username:scrypt$<n>$<r>$<p>$<salt base64>$<key base64>

(``hashlib.scrypt``, n=16384, r=8, p=1, a 32-byte key, a 16-byte random salt,
standard base64 with padding). Error messages name the line, never its
content: the file holds password hashes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import os
import re
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SCHEME = "scrypt"
N, R, P, KEY_BYTES, SALT_BYTES = 16384, 8, 1, 32, 16
MAX_N = 2**20
MAX_MEMORY = 64 * 2**20  # scrypt needs 128 * n * r bytes: 16 MiB at the defaults
MAX_PASSWORD = 1024  # characters; a longer one is refused before hashing
USERNAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
LINE_FORMAT = "user:scrypt$<n>$<r>$<p>$<salt base64>$<key base64>"


class AuthFileError(ValueError):
    """The login file cannot be used: missing, unreadable, or a malformed line (named by number)."""


@dataclass(frozen=True, repr=False)
class Credential:
    """One password hash: scrypt parameters, salt and derived key."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def matches(self, password: str) -> bool:
        """True if ``password`` derives this key (constant-time comparison)."""
        # surrogatepass: a lone surrogate (never a valid stored password) costs a hash, not a crash
        secret = password.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(self._derive(secret), self.key)

    def _derive(self, secret: bytes) -> bytes:
        return hashlib.scrypt(
            secret,
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            dklen=len(self.key),
            maxmem=MAX_MEMORY + 2**20,
        )

    def encode(self) -> str:
        """``scrypt$n$r$p$salt$key`` (standard base64 with padding)."""
        salt = base64.b64encode(self.salt).decode("ascii")
        key = base64.b64encode(self.key).decode("ascii")
        return f"{SCHEME}${self.n}${self.r}${self.p}${salt}${key}"


def hash_password(password: str, salt: bytes | None = None) -> Credential:
    """A new credential for ``password`` with the default parameters and a random salt."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    draft = Credential(N, R, P, salt, b"\0" * KEY_BYTES)
    return Credential(N, R, P, salt, draft._derive(password.encode("utf-8")))


def credential_line(user: str, password: str) -> str:
    """The login-file line for ``user`` with ``password``."""
    if not USERNAME.fullmatch(user):
        raise ValueError("user name must be 1-64 of A-Z a-z 0-9 _ . @ + -")
    if not password or len(password) > MAX_PASSWORD:
        raise ValueError(f"password must be 1-{MAX_PASSWORD} characters")
    return f"{user}:{hash_password(password).encode()}"


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError(f"{what} is not standard base64") from None


def parse_credential(text: str) -> Credential:
    """A credential from ``scrypt$n$r$p$salt$key``; ``ValueError`` names the bad field only."""
    fields = text.split("$")
    if len(fields) != 6 or fields[0] != SCHEME:
        raise ValueError(f"expected {LINE_FORMAT}")
    if not all(f.isascii() and f.isdigit() for f in fields[1:4]):
        raise ValueError("n, r and p must be decimal integers")
    n, r, p = (int(f) for f in fields[1:4])
    if not 2 <= n <= MAX_N or n & (n - 1):
        raise ValueError(f"n must be a power of two from 2 to {MAX_N}")
    if not 1 <= r <= 64 or not 1 <= p <= 4 or 128 * n * r > MAX_MEMORY:
        raise ValueError(f"r and p out of range (scrypt memory at most {MAX_MEMORY >> 20} MiB)")
    salt, key = _b64(fields[4], "salt"), _b64(fields[5], "key")
    if not 8 <= len(salt) <= 64 or not 16 <= len(key) <= 64:
        raise ValueError("salt must be 8-64 bytes and key 16-64 bytes")
    return Credential(n, r, p, salt, key)


class Users:
    """The users of a login file; :meth:`verify` costs one scrypt whether the user exists or not."""

    def __init__(self, credentials: Mapping[str, Credential]) -> None:
        self._credentials = dict(credentials)
        # Unknown names are hashed too, so the answer time does not tell which names exist.
        self._decoy = Credential(N, R, P, os.urandom(SALT_BYTES), os.urandom(KEY_BYTES))

    def __contains__(self, user: object) -> bool:
        return user in self._credentials

    def __len__(self) -> int:
        return len(self._credentials)

    def verify(self, user: str, password: str) -> bool:
        """True if ``user`` exists and ``password`` is theirs."""
        if len(password) > MAX_PASSWORD:
            return False
        credential = self._credentials.get(user)
        if credential is None:
            self._decoy.matches(password)
            return False
        return credential.matches(password)


def parse_users(lines: Iterable[str], source: str = "auth file") -> Users:
    """Users from login-file lines; ``AuthFileError`` names the first bad line's number."""
    credentials: dict[str, Credential] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, rest = line.partition(":")
        try:
            if not colon:
                raise ValueError(f"expected {LINE_FORMAT}")
            if not USERNAME.fullmatch(user):
                raise ValueError("user name must be 1-64 of A-Z a-z 0-9 _ . @ + -")
            if user in credentials:
                raise ValueError("user name repeats an earlier line")
            credentials[user] = parse_credential(rest)
        except ValueError as exc:
            raise AuthFileError(f"{source}, line {number}: {exc}") from None
    if not credentials:
        raise AuthFileError(f"{source} has no user line (nobody could log in)")
    return Users(credentials)


def load_users(path: Path) -> Users:
    """The users of the login file at ``path``; ``AuthFileError`` if it cannot be used."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise AuthFileError(f"cannot read auth file {path}: {reason}") from None
    return parse_users(text.splitlines(), f"auth file {path}")


class Throttle:
    """Failed logins per key (a session, a user name) in a sliding window; thread-safe, bounded.

    A key with ``failures`` failures in the last ``window`` seconds must wait until
    the oldest leaves the window. At most ``max_keys`` keys are kept: expired ones
    go first, then the least recently failed (counted in ``evicted``).
    """

    def __init__(self, failures: int = 5, window: float = 300.0, max_keys: int = 4096) -> None:
        self.failures, self.window, self.max_keys = failures, window, max_keys
        self._lock = threading.Lock()
        self._failed: OrderedDict[Hashable, deque[float]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._failed)

    def retry_after(self, keys: Sequence[Hashable], now: float) -> float:
        """Seconds until every key may try again (0 when they may now)."""
        with self._lock:
            wait = 0.0
            for key in keys:
                times = self._failed.get(key)
                if times is not None and len(times) >= self.failures:
                    wait = max(wait, times[0] + self.window - now)
            return wait

    def failed(self, keys: Sequence[Hashable], now: float) -> None:
        """Count one failed attempt against every key."""
        with self._lock:
            for key in keys:
                times = self._failed.pop(key, None)
                if times is None:
                    self._make_room(now)
                    times = deque(maxlen=self.failures)
                times.append(now)
                self._failed[key] = times  # most recently failed last

    def succeeded(self, keys: Sequence[Hashable]) -> None:
        """Forget the failures of every key (a correct password was given)."""
        with self._lock:
            for key in keys:
                self._failed.pop(key, None)

    def _make_room(self, now: float) -> None:
        if len(self._failed) < self.max_keys:
            return
        expired = [k for k, t in self._failed.items() if t[-1] + self.window <= now]
        for key in expired:
            del self._failed[key]
        while len(self._failed) >= self.max_keys:
            self._failed.popitem(last=False)
            self.evicted += 1


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the login-file line for USER with the password read from stdin."""
    parser = argparse.ArgumentParser(
        prog="python -m services.dashboard.auth",
        description="Print a dashboard login line (user:scrypt$...) for USER; "
        "the password is read from stdin (one line).",
    )
    parser.add_argument("user", metavar="USER", help="user name (1-64 of A-Z a-z 0-9 _ . @ + -)")
    args = parser.parse_args(argv)
    try:
        print(credential_line(args.user, _read_password()))
    except ValueError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
