"""The phone servers' token and TLS certificate: given, or generated once in ``--phone-dir``.

Browsers give a page the motion sensors only in a secure context, so the phone
page is served over HTTPS. Without ``--phone-cert``/``--phone-key`` the gateway
makes a self-signed certificate (EC P-256, SHA-256, 825 days: the longest any
phone browser accepts) for ``localhost``, ``127.0.0.1`` and the public host,
once, and makes a new one when the public host changes. The token (128 random
bits, URL-safe) is written next to it, readable by its owner only; the
dashboard shows it (it reads ``<its --data-dir>/phone/token``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from services.ble_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

TOKEN_FILE, CERT_FILE, KEY_FILE = "token", "cert.pem", "key.pem"
VALID_DAYS = 825


@dataclass(frozen=True)
class Tls:
    """A certificate and key on disk, and the certificate's SHA-256 fingerprint."""

    cert: Path
    key: Path
    fingerprint: str


def public_host(settings: GatewaySettings) -> str:
    """The name phones use: ``--phone-public-host``, else this machine's first non-loopback IPv4.

    Found from the host name alone (no packet is sent); ``localhost`` when that
    gives nothing better (then pass ``--phone-public-host``).
    """
    if settings.phone_public_host:
        return settings.phone_public_host
    if settings.phone_loopback:
        return "127.0.0.1"
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    for info in infos:
        address = str(info[4][0])
        if not ipaddress.ip_address(address).is_loopback:
            return address
    return "localhost"


def token(settings: GatewaySettings) -> str | None:
    """The token phones must send; None when none is needed (loopback only, none given)."""
    if settings.phone_token:
        return settings.phone_token
    path = settings.phone_dir / TOKEN_FILE
    if path.exists():
        value = path.read_text().strip()
        if not 16 <= len(value) <= 128 or not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"{path} does not hold a token (16-128 of [A-Za-z0-9_-])")
        return value
    if settings.phone_loopback:
        return None
    value = secrets.token_urlsafe(16)
    _write_private(path, value + "\n")
    logger.info("phone token generated in %s", path)
    return value


def certificate(settings: GatewaySettings, host: str) -> Tls:
    """The TLS certificate to serve: given, or generated for ``host`` in ``--phone-dir``."""
    if settings.phone_cert is not None and settings.phone_key is not None:
        return Tls(settings.phone_cert, settings.phone_key, _fingerprint(settings.phone_cert))
    cert, key = settings.phone_dir / CERT_FILE, settings.phone_dir / KEY_FILE
    if not (cert.exists() and key.exists() and host in _names(cert)):
        _generate(cert, key, host)
        logger.info("self-signed certificate for %s written to %s", host, cert)
    return Tls(cert, key, _fingerprint(cert))


def _names(cert: Path) -> set[str]:
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    try:
        san = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    dns = san.get_values_for_type(x509.DNSName)
    return {*dns, *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))}


def _generate(cert: Path, key: Path, host: str) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imu-har phone page")])
    alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for value in {"127.0.0.1", host}:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            alt.append(x509.DNSName(value))
    now = dt.datetime.now(dt.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key, pem.decode())
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))


def _fingerprint(cert: Path) -> str:
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only (replacing the file atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)
