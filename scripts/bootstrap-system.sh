#!/usr/bin/env bash
# Install the system packages imu-har needs, when they are missing (Debian/Ubuntu).
#   scripts/bootstrap-system.sh          Mosquitto (the broker)
#   scripts/bootstrap-system.sh --test   also Chromium (dashboard browser test), gcc (firmware
#                                        test) and openssl (deploy tests: make-passwd.sh's certificate)
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v gcc >/dev/null 2>&1 || need+=(gcc)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "bootstrap: installing ${need[*]} with apt-get" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: apt-get not found; install ${need[*]} with your package manager" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# Debian starts the packaged broker as a system service; imu-har starts its own.
