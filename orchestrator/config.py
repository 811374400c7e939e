"""Effective settings: environment variables over an optional ``flp.toml``.

Every setting has one name (``database_url``), read from ``FLP_DATABASE_URL`` or
from ``database_url = "..."`` in ``flp.toml`` (``FLP_CONFIG`` names another
file). A bad value stops the program at start with a message naming the setting.
"""

from __future__ import annotations

import difflib
import os
import socket
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from orchestrator.errors import FlpError

CONFIG_FILE_DEFAULT = "flp.toml"
DATA_DIR_DEFAULT = ".flp"  # relative to the working folder
EMBEDDED_DATABASE_DEFAULT = "flp"  # the embedded server's database every command but the demo uses
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("keyvalue", "json")
DATABASE_SCHEMES = ("postgresql", "postgresql+psycopg", "mssql", "mssql+pyodbc", "mssql+mssqlpython")


# FLP_ variables that are not settings: read by the tests, CI and benchmarks, or
# naming the config file. Anything else starting with FLP_ is a typo until proven
# otherwise (FLP_DATABSE_URL would silently leave the default database in use).
ENVIRONMENT_ALLOWED = ("FLP_CONFIG", "FLP_REQUIRE_SERVICES")
ENVIRONMENT_ALLOWED_PREFIXES = ("FLP_TEST_", "FLP_BENCH_")


class ConfigError(FlpError, ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None  # None: embedded PostgreSQL in data_dir
    data_dir: Path = Path(DATA_DIR_DEFAULT)
    mongo_url: str | None = None
    queue_url: str | None = None  # None: the queue table in our database
    smtp_url: str | None = None  # None: mails go to data_dir/outbox
    embedded_database: str = EMBEDDED_DATABASE_DEFAULT  # used when database_url is None
    log_level: str | None = None  # None: WARNING for interactive commands, INFO for the orchestrator
    log_format: str = "keyvalue"  # or json
    host_name: str | None = None  # written to Ops.JobRun; default: this machine's name
    # flp serve (docs/http.md); checked by orchestrator.http.settings when the service starts.
    http_listen: str | None = None  # host:port, default 127.0.0.1:8080
    auth_public_key_file: str | None = None  # PEM public key that signs the bearer tokens
    auth_jwks_file: str | None = None  # or a JWKS file (several keys, by kid)
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_leeway_seconds: str | None = None  # clock skew allowed on exp/nbf/iat, default 30
    tls_cert_file: str | None = None  # serve HTTPS directly (else behind a reverse proxy)
    tls_key_file: str | None = None
    upload_bulk_rows: str | None = None  # an upload over this many rows is a queued bulk job (default 500)
    # CDA (docs/cda.md): the HL7 CDA R2 SDTC schema folder (default ../shared/cda beside the checkout)
    # and the key of the patient hash in the access log (default a key file made in data_dir).
    cda_schema_dir: str | None = None
    cda_hash_key_file: str | None = None

    @property
    def host(self) -> str:
        """The host name written to Ops.JobRun and Ops.Heartbeat."""
        return self.host_name or socket.gethostname()

    @property
    def engine(self) -> str:
        """'postgresql' or 'mssql': which procedure folder applies."""
        if self.database_url is None:
            return "postgresql"
        return "mssql" if self.database_url.startswith("mssql") else "postgresql"

    def database_description(self) -> str:
        """Which database the commands use, without its password: for ``flp config`` and the demo."""
        if self.database_url is None:
            return (
                f"database {self.embedded_database} on the embedded PostgreSQL in {self.data_dir / 'pgdata'}"
            )
        parts = urlsplit(self.database_url)
        name = parts.path.lstrip("/") or "(the login's default)"
        where = parts.hostname or "local socket"
        if parts.port:
            where = f"{where}:{parts.port}"
        return f"database {name} on {where} ({self.engine})"

    def masked(self) -> dict[str, str]:
        """Settings for display, with passwords replaced by ``***``."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and "://" in value:
                value = mask_url(value)
            out[f.name] = "(unset)" if value is None else str(value)
        return out


SECRET_QUERY_KEYS = ("password", "sslpassword")  # libpq accepts passwords in the query string too


def mask_url(url: str) -> str:
    """The URL with every password (user info or query parameter) shown as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = "&".join(
        f"{key}=***" if key.lower() in SECRET_QUERY_KEYS else pair
        for pair in parts.query.split("&")
        if pair
        for key in [pair.split("=", 1)[0]]
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in schemes:
        raise ConfigError(
            f"setting {name} (FLP_{name.upper()}): scheme {scheme!r} is not one of "
            f"{', '.join(schemes)}; got {mask_url(value)!r}"
        )
    return value


def environment_names() -> list[str]:
    """Every FLP_ variable that is a setting."""
    return [f"FLP_{f.name.upper()}" for f in fields(Settings)]


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Refuse an FLP_ variable that is neither a setting nor one the tests, CI or benchmarks
    read, naming the nearest known name."""
    env = os.environ if environ is None else environ
    settings = environment_names()
    known = [*settings, *ENVIRONMENT_ALLOWED]
    unknown = sorted(
        name
        for name in env
        if name.startswith("FLP_") and name not in known and not name.startswith(ENVIRONMENT_ALLOWED_PREFIXES)
    )
    if not unknown:
        return
    problems = []
    for name in unknown:
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"did you mean {nearest[0]}?" if nearest else f"the settings are {', '.join(settings)}"
        problems.append(f"{name} is not a setting ({hint})")
    raise ConfigError("environment variable " + "; ".join(problems))


def host_name(settings: Settings | None = None) -> str:
    """FLP_HOST_NAME (or host_name in flp.toml), else this machine's name."""
    return (settings or load()).host


HTTP_SETTINGS = (
    "http_listen",
    "auth_public_key_file",
    "auth_jwks_file",
    "auth_issuer",
    "auth_audience",
    "auth_leeway_seconds",
    "tls_cert_file",
    "tls_key_file",
    "upload_bulk_rows",
    "cda_schema_dir",
    "cda_hash_key_file",
)


def load(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigError naming the bad one."""
    env = os.environ if environ is None else environ
    check_environment(env)
    path = Path(env.get("FLP_CONFIG", CONFIG_FILE_DEFAULT))
    file_values: dict[str, object] = {}
    if path.is_file():
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")

    raw: dict[str, str] = {k: str(v) for k, v in file_values.items()}
    for name in known:
        env_value = env.get(f"FLP_{name.upper()}")
        if env_value is not None and env_value != "":
            raw[name] = env_value

    log_level = raw.get("log_level")
    if log_level is not None:
        log_level = log_level.upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(
                f"setting log_level (FLP_LOG_LEVEL): {log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
    log_format = raw.get("log_format", "keyvalue").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"setting log_format (FLP_LOG_FORMAT): {log_format!r} is not one of {', '.join(LOG_FORMATS)}"
        )
    embedded_database = raw.get("embedded_database", EMBEDDED_DATABASE_DEFAULT)
    if not embedded_database.replace("_", "a").isalnum() or not embedded_database[0].isalpha():
        raise ConfigError(
            f"setting embedded_database (FLP_EMBEDDED_DATABASE): {embedded_database!r} is not a plain "
            "database name (letters, digits and _, starting with a letter)"
        )
    database_url = raw.get("database_url")
    if database_url is not None:
        _check_url("database_url", database_url, DATABASE_SCHEMES)
    mongo_url = raw.get("mongo_url")
    if mongo_url is not None:
        _check_url("mongo_url", mongo_url, ("mongodb", "mongodb+srv"))
    queue_url = raw.get("queue_url")
    if queue_url is not None:
        _check_url("queue_url", queue_url, ("amqp", "amqps"))
    smtp_url = raw.get("smtp_url")
    if smtp_url is not None:
        _check_url("smtp_url", smtp_url, ("smtp", "smtps"))
    return Settings(
        database_url=database_url,
        data_dir=Path(raw.get("data_dir", DATA_DIR_DEFAULT)).expanduser().resolve(),
        mongo_url=mongo_url,
        queue_url=queue_url,
        smtp_url=smtp_url,
        embedded_database=embedded_database,
        log_level=log_level,
        log_format=log_format,
        host_name=raw.get("host_name"),
        **{name: raw.get(name) for name in HTTP_SETTINGS},
    )
