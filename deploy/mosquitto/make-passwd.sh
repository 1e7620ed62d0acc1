#!/usr/bin/env bash
# Secrets of the Docker Compose deployment, made from the passwords in .env.
#
#   deploy/mosquitto/make-passwd.sh [ENV_FILE] [DEPLOY_DIR]
#
# ENV_FILE (default .env in the repository root) is created from
# deploy/env.example when it does not exist, with a random password for every
# account; a password line missing from an existing one (an account added by an
# upgrade) is appended with a random password. Then, under DEPLOY_DIR (default
# deploy/ of this repository), it writes:
#   mosquitto/passwd           every broker account (the TLS listener, 8883)
#   mosquitto/passwd-services  service accounts and monitor (the internal listener, 1883)
#   mosquitto/tls/             server.crt + server.key for the names in
#                              HAR_BROKER_HOSTNAMES, and ca.crt for the clients,
#                              issued by a local CA kept in tls-ca/ (never mounted);
#                              a certificate you put there yourself is left alone
#   dashboard/users            the dashboard login: user admin, HAR_DASHBOARD_LOGIN_PASSWORD
# Needs openssl, and python3 (or docker, which then runs python:3.11-slim) for
# the hashes: Mosquitto's PBKDF2-SHA512 ($7$, as mosquitto_passwd 2.0 writes it)
# and the dashboard's scrypt. Passwords never appear on a command line.
# Run it again after changing .env, then: docker compose up -d --force-recreate
set -euo pipefail
set -f  # no globbing: passwords and host names are split on spaces, never expanded
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
env_file="${1:-$root/.env}"
deploy="${2:-$root/deploy}"

# Keep in step with imu_har/ops/accounts.py and imu_har/protocol/topics.py (tests check it).
services="gateway windower classifier recorder dashboard workout trainer homeassistant"
tools="monitor phone hass"
internal="$services monitor"
reserved="service recorder classifier model windower gateway trainer workout dashboard homeassistant"

die() { echo "make-passwd: $*" >&2; exit 1; }
random_password() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c 1-24; }
key_of() { echo "HAR_$(echo "$1" | tr '[:lower:]' '[:upper:]')_PASSWORD"; }

# Read KEY=VALUE lines without executing the file.
value() {
  local v
  v="$(grep -E "^$1=" "$env_file" | tail -n 1 | cut -d= -f2-)" || true
  v="${v%\"}"; v="${v#\"}"; v="${v%\'}"; v="${v#\'}"
  printf '%s' "$v"
}

# Python 3 for the hashes: this machine's, or the official image's.
py() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c "$@"
  elif command -v docker >/dev/null 2>&1; then
    docker run --rm -i python:3.11-slim python3 -c "$@"
  else
    die "needs python3 (or docker) for the password hashes"
  fi
}

# stdin "user:password" lines -> "user:hash" lines; $1: mosquitto or scrypt.
HASHER='
import base64, hashlib, os, sys
b64 = lambda b: base64.b64encode(b).decode("ascii")
for line in sys.stdin.read().splitlines():
    user, _, password = line.partition(":")
    if sys.argv[-1] == "scrypt":
        salt = os.urandom(16)
        key = hashlib.scrypt(password.encode(), salt=salt, n=16384, r=8, p=1, dklen=32)
        print(f"{user}:scrypt$16384$8$1${b64(salt)}${b64(key)}")
    else:
        salt = os.urandom(12)
        key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
        print(f"{user}:$7$101${b64(salt)}${b64(key)}")
'
hash_lines() { py "$HASHER" "$1"; }

# -- .env: create it, or add the password lines an upgrade introduced --------------
if [ ! -e "$env_file" ]; then
  (
    umask 077
    while IFS= read -r line; do
      case "$line" in
        *=change-me) printf '%s=%s\n' "${line%=change-me}" "$(random_password)" ;;
        *) printf '%s\n' "$line" ;;
      esac
    done <"$here/../env.example" >"$env_file"
  )
  echo "make-passwd: wrote $env_file with random passwords" >&2
fi
for key in $(for a in $services $tools; do key_of "$a"; done) HAR_DASHBOARD_LOGIN_PASSWORD; do
  if ! grep -qE "^$key=" "$env_file"; then
    printf '%s=%s\n' "$key" "$(random_password)" >>"$env_file"
    echo "make-passwd: added $key to $env_file (a new account)" >&2
  fi
done

# -- check everything before writing anything ---------------------------------------
secret() {
  local v
  v="$(value "$1")"
  if [ -z "$v" ] || [ "$v" = "change-me" ]; then
    die "set $1 in $env_file (not empty, not change-me)"
  fi
  printf '%s' "$v"
}
valid_device() {
  local id="$1" lower name
  [[ "$id" =~ ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$ ]] && [[ "$id" != *..* ]] || return 1
  lower="$(echo "$id" | tr '[:upper:]' '[:lower:]')"
  for name in $reserved $services $tools; do [ "$lower" != "$name" ] || return 1; done
}
all=()
internal_users=()
for account in $services $tools; do
  pair="$account:$(secret "$(key_of "$account")")"
  all+=("$pair")
  case " $internal " in *" $account "*) internal_users+=("$pair") ;; esac
done
for pair in $(value HAR_DEVICE_USERS); do
  case "$pair" in
    ?*:?*) valid_device "${pair%%:*}" || die "HAR_DEVICE_USERS: '${pair%%:*}' is not a usable device id (docs/protocol.md; not an account name)" ;;
    *) die "HAR_DEVICE_USERS entry '$pair' is not device-id:password" ;;
  esac
  all+=("$pair")
done
login="admin:$(secret HAR_DASHBOARD_LOGIN_PASSWORD)"
hostnames="$(value HAR_BROKER_HOSTNAMES)"
[ -n "$hostnames" ] || hostnames="localhost 127.0.0.1 mosquitto $(hostname)"
command -v openssl >/dev/null 2>&1 || die "needs openssl for the broker's TLS certificate"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$deploy/mosquitto" "$deploy/dashboard"

# -- password files (owner-only: the broker container copies them as root) -----------
printf '%s\n' "${all[@]}" | hash_lines mosquitto >"$work/passwd"
printf '%s\n' "${internal_users[@]}" | hash_lines mosquitto >"$work/passwd-services"
# The dashboard container runs as uid 10001 and reads the file directly: it is
# world-readable, which is safe for the scrypt hash of a random password.
printf '%s\n' "$login" | hash_lines scrypt >"$work/users"
chmod 0600 "$work/passwd" "$work/passwd-services"
chmod 0644 "$work/users"
mv "$work/passwd" "$work/passwd-services" "$deploy/mosquitto/"
mv "$work/users" "$deploy/dashboard/users"
echo "make-passwd: wrote broker passwords for ${#all[@]} accounts (${#internal_users[@]} on the internal listener) and the dashboard login" >&2

# -- the broker's TLS certificate ------------------------------------------------------
tls="$deploy/mosquitto/tls"
ca="$deploy/tls-ca"
mkdir -p "$tls"
if [ -e "$tls/server.crt" ] && [ ! -e "$ca/ca.key" ]; then
  [ -e "$tls/server.key" ] || die "$tls/server.crt has no server.key next to it"
  echo "make-passwd: keeping your own certificate in $tls" >&2
  exit 0
fi
if [ ! -e "$ca/ca.key" ]; then
  mkdir -p "$ca"
  (umask 077 && openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -keyout "$work/ca.key" -out "$work/ca.crt" -subj "/CN=imu-har broker CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$work/openssl.log") \
    || die "openssl could not make the CA: $(cat "$work/openssl.log")"
  mv "$work/ca.key" "$work/ca.crt" "$ca/"
  rm -f "$tls/server.crt"  # issued by a CA that is gone
  echo "make-passwd: made a certificate authority in $ca (keep ca.key private)" >&2
fi
if [ ! -e "$tls/server.crt" ] || [ "$(cat "$tls/hostnames" 2>/dev/null)" != "$hostnames" ]; then
  san=""
  for name in $hostnames; do
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san+=",IP:$name"; else san+=",DNS:$name"; fi
  done
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    "subjectAltName=${san#,}" "subjectKeyIdentifier=hash" \
    "authorityKeyIdentifier=keyid,issuer" >"$work/server.ext"
  first="${hostnames%% *}"
  (umask 077 && openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=$first" \
    -keyout "$work/server.key" -out "$work/server.csr" 2>"$work/openssl.log" \
    && openssl x509 -req -sha256 -days 825 -in "$work/server.csr" -CA "$ca/ca.crt" \
      -CAkey "$ca/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -extfile "$work/server.ext" -out "$work/server.crt" 2>"$work/openssl.log") \
    || die "openssl could not issue the server certificate: $(cat "$work/openssl.log")"
  cp "$ca/ca.crt" "$work/ca.crt"
  printf '%s\n' "$hostnames" >"$work/hostnames"
  chmod 0644 "$work/server.crt" "$work/ca.crt"
  mv "$work/server.key" "$work/server.crt" "$work/ca.crt" "$work/hostnames" "$tls/"
  echo "make-passwd: issued the broker certificate for: $hostnames" >&2
fi
