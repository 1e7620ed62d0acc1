"""Broker accounts and their topic rights: the Mosquitto ACL of every imu-har broker.

The table of which account may read and write which topics is
:mod:`imu_har.ops.accounts`; this module renders it in Mosquitto's ``acl_file``
format (:func:`render_acl`):

- ``deploy/mosquitto/acl`` (Docker Compose) is ``render_acl("har")``; a test keeps
  the committed file equal to it. Another topic root:
  ``python -m imu_har.ops.acl --root myroot > deploy/mosquitto/acl``.
- ``deploy/mosquitto/acl-anonymous`` is the anonymous section that the development
  broker puts in front of it (``render_anonymous("har")``).
- ``har up`` writes ``render_acl(root, anonymous=True)`` with a password file of
  random passwords (:func:`imu_har.ops.broker.private_broker`), so on its private
  broker too only the classifier may publish the retained model spec (issue 12).

docs/deployment.md has the same rights as a table; tests run the real Mosquitto
with the rendered file and check every account against that table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from imu_har.ops.accounts import accounts, anonymous_rules, device_rules
from imu_har.protocol.topics import DEFAULT_ROOT, validate_root


def render_anonymous(root: str = DEFAULT_ROOT) -> str:
    """The anonymous section (must come before any ``user`` line of the ACL)."""
    lines = [
        "# -- Anonymous clients: development brokers only (har up, docker-compose.dev.yml) --",
        "# Watch everything, send commands, feed raw frames; nothing a service owns.",
        *(r.line() for r in anonymous_rules(root)),
    ]
    return "\n".join(lines) + "\n"


def render_acl(root: str = DEFAULT_ROOT, anonymous: bool = False) -> str:
    """The ``acl_file`` text for topic root ``root``; ``anonymous`` adds the anonymous section."""
    validate_root(root)
    out = [
        "# Topic rights of imu-har broker users (mosquitto acl_file format).",
        f"# Generated for topic root {root!r} by: python -m imu_har.ops.acl --root {root}",
        "# (docs/deployment.md has them as a table). Anything not granted here is denied;",
        "# 'deny' lines win over every grant of the same user.",
        "",
    ]
    if anonymous:
        out += [render_anonymous(root)]
    out += [
        "# -- Wearables that speak MQTT themselves --------------------------------------",
        "# A device logs in with its device id as user name (%u): it may publish only its",
        "# own raw frames, link status and phone stream, and read its own predictions.",
        "# Patterns apply to every user name; see the deny lines of monitor and phone.",
        *(r.line("pattern") for r in device_rules(root)),
        "",
    ]
    for account in accounts(root):
        out += [f"# {account.name}: {account.about}", f"user {account.name}"]
        out += [r.line() for r in account.rules]
        out += [""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the ACL for a topic root (``deploy/mosquitto/acl`` is the one for ``har``)."""
    parser = argparse.ArgumentParser(prog="python -m imu_har.ops.acl", description=__doc__)
    parser.add_argument("--root", default=DEFAULT_ROOT, help="topic root (default har)")
    parser.add_argument("--anonymous-only", action="store_true", help="only the anonymous part")
    args = parser.parse_args(argv)
    try:
        root = validate_root(args.root)
    except ValueError as exc:
        parser.error(str(exc))
    print(render_anonymous(root) if args.anonymous_only else render_acl(root), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
