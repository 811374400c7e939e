"""The service's settings, checked when it starts (each error names its setting)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import ConfigError, Settings

LISTEN_DEFAULT = "127.0.0.1:8080"
LEEWAY_DEFAULT = 30
BULK_ROWS_DEFAULT = 500


@dataclass(frozen=True)
class HttpSettings:
    host: str
    port: int
    public_key_file: Path | None
    jwks_file: Path | None
    issuer: str
    audience: str
    leeway_seconds: int
    tls_cert_file: Path | None
    tls_key_file: Path | None
    bulk_rows: int = BULK_ROWS_DEFAULT  # an upload over this many rows is queued as a job (202)


def _file(name: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"setting {name} (FLP_{name.upper()}): no such file {value!r}")
    return path


def from_settings(settings: Settings) -> HttpSettings:
    listen = settings.http_listen or LISTEN_DEFAULT
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"setting http_listen (FLP_HTTP_LISTEN): {listen!r} is not host:port")
    key = _file("auth_public_key_file", settings.auth_public_key_file)
    jwks = _file("auth_jwks_file", settings.auth_jwks_file)
    if (key is None) == (jwks is None):
        raise ConfigError(
            "settings auth_public_key_file / auth_jwks_file (FLP_AUTH_PUBLIC_KEY_FILE / FLP_AUTH_JWKS_FILE): "
            "give exactly one, the key that signs the bearer tokens"
        )
    for name in ("auth_issuer", "auth_audience"):
        if not getattr(settings, name):
            raise ConfigError(f"setting {name} (FLP_{name.upper()}) is required by flp serve")
    leeway_text = settings.auth_leeway_seconds or str(LEEWAY_DEFAULT)
    if not leeway_text.isdigit() or int(leeway_text) > 300:
        raise ConfigError(
            f"setting auth_leeway_seconds (FLP_AUTH_LEEWAY_SECONDS): {leeway_text!r} is not 0 to 300 seconds"
        )
    cert = _file("tls_cert_file", settings.tls_cert_file)
    tls_key = _file("tls_key_file", settings.tls_key_file)
    if (cert is None) != (tls_key is None):
        raise ConfigError(
            "settings tls_cert_file and tls_key_file (FLP_TLS_CERT_FILE, FLP_TLS_KEY_FILE) go together"
        )
    bulk_text = settings.upload_bulk_rows or str(BULK_ROWS_DEFAULT)
    if not bulk_text.isdigit() or not 1 <= int(bulk_text) <= 1_000_000:
        raise ConfigError(
            f"setting upload_bulk_rows (FLP_UPLOAD_BULK_ROWS): {bulk_text!r} is not 1 to 1000000 rows"
        )
    return HttpSettings(
        host=host.strip("[]"),
        port=int(port_text),
        public_key_file=key,
        jwks_file=jwks,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        leeway_seconds=int(leeway_text),
        tls_cert_file=cert,
        tls_key_file=tls_key,
        bulk_rows=int(bulk_text),
    )
