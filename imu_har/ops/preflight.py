"""Why ``har up`` must stop before it starts anything: one line each, exit status 2.

Checked on the command line and the environment alone (nothing is started):

- an invalid topic root (``--topic-root`` or ``HAR_TOPIC_ROOT``, e.g. ``har/#``)
  used to crash ``har up`` with a traceback once its private broker was running;
- a dashboard beyond loopback (``--dashboard-address 0.0.0.0``) without a login
  refuses to start (services/dashboard/app.py), and the supervisor restarted it
  forever: now ``har up`` says so at once, unless ``--auth-file`` (in
  ``--dashboard-args`` or ``HAR_AUTH_FILE``) or ``--allow-anonymous`` is given;
- an unbalanced quote in a ``--<service>-args`` value.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from pathlib import Path

from imu_har.ops.supervisor import OPTIONAL_SERVICES, SERVICES
from imu_har.protocol.topics import validate_root

# Addresses only this machine reaches: the dashboard serves them without a login
# (as services/dashboard/settings.py says; imu_har may not import a service).
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})  # what pydantic reads as True


def refusal(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """Why ``har up`` with ``args`` in ``env`` must not start (one line), or None."""
    extra: dict[str, list[str]] = {}
    for name in (*SERVICES, *OPTIONAL_SERVICES):
        try:
            extra[name] = shlex.split(getattr(args, f"{name}_args"))
        except ValueError as exc:
            return f"--{name}-args: {exc}"
    return root_problem(args, env) or login_problem(args, env, extra["dashboard"])


def root_problem(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """An invalid ``--topic-root`` (or, without it, ``HAR_TOPIC_ROOT``)."""
    given, source = args.topic_root, "--topic-root"
    if given is None:  # an empty HAR_TOPIC_ROOT means the default, as for every service
        given, source = env.get("HAR_TOPIC_ROOT") or None, "HAR_TOPIC_ROOT"
    if given is None:
        return None
    try:
        validate_root(given)
    except ValueError as exc:  # names the value with repr: a newline stays on this line
        return f"{source}: {exc}"
    return None


def login_problem(args: argparse.Namespace, env: Mapping[str, str], extra: list[str]) -> str | None:
    """A dashboard beyond loopback without a login file (or ``--allow-anonymous``).

    ``extra`` (the ``--dashboard-args``) come after ``har up``'s own dashboard
    flags, so their ``--address`` wins, as in the dashboard's parser.
    """
    if args.no_dashboard:
        return None
    own = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    own.add_argument("--address")
    own.add_argument("--auth-file")
    own.add_argument("--allow-anonymous", action=argparse.BooleanOptionalAction)
    own.add_argument("--config")
    try:
        flags, _ = own.parse_known_args(extra)
    except argparse.ArgumentError:
        return None  # the dashboard's own parser says what is wrong
    address = flags.address or args.dashboard_address
    anonymous = flags.allow_anonymous
    if anonymous is None:
        anonymous = env.get("HAR_ALLOW_ANONYMOUS", "").strip().lower() in TRUE
    if address in LOOPBACK or anonymous or flags.config is not None:
        return None  # a --config file may hold the login: the dashboard reads it
    auth_file = flags.auth_file or env.get("HAR_AUTH_FILE") or None
    if auth_file is None:
        return (
            f"--dashboard-address {address}: the dashboard serves beyond loopback only with a "
            "login: --dashboard-args '--auth-file FILE' or HAR_AUTH_FILE (python -m "
            "services.dashboard.auth USER makes a line), or --dashboard-args --allow-anonymous"
        )
    if not Path(auth_file).is_file():
        return f"dashboard login file {auth_file!r} does not exist"
    return None
