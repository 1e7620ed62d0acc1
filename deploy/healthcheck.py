"""Container healthcheck: is this service online, according to its retained status?

    python deploy/healthcheck.py SERVICE        # MQTT: har/service/SERVICE/status
    python deploy/healthcheck.py --http URL     # HTTP 200 (the dashboard)

Broker settings come from the environment like every service (HAR_MQTT_HOST,
HAR_MQTT_PORT, HAR_MQTT_USERNAME, HAR_MQTT_PASSWORD, HAR_TOPIC_ROOT,
HAR_STATUS_INTERVAL). Healthy (exit 0) when the retained status says
``online`` and was updated within ``--max-age`` seconds (default: three status
intervals plus five seconds); otherwise exit 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from collections.abc import Sequence


def check_http(url: str, timeout: float) -> str | None:
    """None when ``url`` answers 200, else the reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def check_status(service: str, max_age: float | None, timeout: float) -> str | None:
    """None when the retained status of ``service`` is online and fresh, else the reason."""
    from imu_har.protocol import topics
    from imu_har.protocol.messages import ServiceStatus
    from imu_har.runtime.client import Collector, connect_settings
    from imu_har.runtime.settings import MqttSettings, load_settings

    settings = load_settings(MqttSettings, [], prog="healthcheck")
    try:
        client = connect_settings(settings, client_id=f"healthcheck-{service}-{time.time_ns()}")
    except (OSError, TimeoutError) as exc:
        return f"cannot connect to the broker: {exc}"
    try:
        topic = topics.SERVICE_STATUS.format(settings.topic_root, service=service)
        messages = Collector(client, topic).wait_for(1, timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    if not messages:
        return f"no status on {topic}"
    status = ServiceStatus.from_payload(bytes(messages[-1].payload))
    limit = max_age if max_age is not None else 3 * settings.status_interval + 5
    age = time.time() - status.updated_at
    if status.state != "online":
        return f"{service} is {status.state}"
    if age > limit:
        return f"{service} status is {age:.0f} s old (limit {limit:.0f} s)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when healthy, 1 (with the reason on stderr) when not."""
    parser = argparse.ArgumentParser(prog="healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument("service", nargs="?", help="service name on its status topic")
    parser.add_argument("--http", metavar="URL", help="check an HTTP endpoint instead")
    parser.add_argument("--max-age", type=float, help="oldest acceptable status (s)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    args = parser.parse_args(argv)
    if bool(args.service) == bool(args.http):
        parser.error("give a SERVICE or --http URL")
    try:
        if args.http:
            problem = check_http(args.http, args.timeout)
        else:
            problem = check_status(args.service, args.max_age, args.timeout)
    except Exception as exc:  # noqa: BLE001 (any failure is "unhealthy", with a reason)
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
