#!/usr/bin/env bash
# Write the broker password file from the passwords in .env.
#
#   deploy/mosquitto/make-passwd.sh [ENV_FILE] [PASSWD_FILE]
#
# ENV_FILE defaults to .env in the repository root; when it does not exist it
# is created from deploy/env.example with a random password for every service.
# PASSWD_FILE defaults to deploy/mosquitto/passwd (mounted into the broker).
# Needs mosquitto_passwd (apt-get install mosquitto-clients or mosquitto), or
# docker, which then runs it from the eclipse-mosquitto:2 image.
# Run it again after changing a password, then: docker compose restart mosquitto
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
env_file="${1:-$root/.env}"
passwd_file="${2:-$here/passwd}"

random_password() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

if [ ! -e "$env_file" ]; then
  umask 077
  while IFS= read -r line; do
    case "$line" in
      *=change-me) printf '%s=%s\n' "${line%=change-me}" "$(random_password)" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done <"$here/../env.example" >"$env_file"
  echo "make-passwd: wrote $env_file with random passwords" >&2
fi

# Read KEY=VALUE lines without executing the file.
value() {
  local v
  v="$(grep -E "^$1=" "$env_file" | tail -n 1 | cut -d= -f2-)" || true
  v="${v%\"}"; v="${v#\"}"; v="${v%\'}"; v="${v#\'}"
  printf '%s' "$v"
}

users=()
for service in gateway windower classifier recorder dashboard monitor; do
  key="HAR_$(echo "$service" | tr '[:lower:]' '[:upper:]')_PASSWORD"
  password="$(value "$key")"
  if [ -z "$password" ] || [ "$password" = "change-me" ]; then
    echo "make-passwd: set $key in $env_file (not empty, not change-me)" >&2
    exit 1
  fi
  users+=("$service:$password")
done
for pair in $(value HAR_DEVICE_USERS); do
  case "$pair" in
    ?*:?*) users+=("$pair") ;;
    *) echo "make-passwd: HAR_DEVICE_USERS entry '$pair' is not device-id:password" >&2; exit 1 ;;
  esac
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: >"$work/passwd"
if command -v mosquitto_passwd >/dev/null 2>&1; then
  for pair in "${users[@]}"; do mosquitto_passwd -b "$work/passwd" "${pair%%:*}" "${pair#*:}"; done
elif command -v docker >/dev/null 2>&1; then
  chmod 0777 "$work"
  for pair in "${users[@]}"; do
    docker run --rm --user "$(id -u):$(id -g)" -v "$work:/work" eclipse-mosquitto:2 \
      mosquitto_passwd -b /work/passwd "${pair%%:*}" "${pair#*:}"
  done
else
  echo "make-passwd: needs mosquitto_passwd (apt-get install mosquitto-clients) or docker" >&2
  exit 1
fi
# Readable by the broker container (which reads it as root before dropping
# privileges) but not by other users of this machine.
chmod 0600 "$work/passwd"
mv "$work/passwd" "$passwd_file"
echo "make-passwd: wrote $passwd_file for ${#users[@]} users" >&2
