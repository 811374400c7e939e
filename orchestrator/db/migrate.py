"""Alembic, driven from Python: upgrade, downgrade, current revision, offline scripts (re-runnable)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from orchestrator.db.files import MIGRATIONS_DIR
from orchestrator.db.urls import sqlalchemy_url
from orchestrator.errors import UsageError

# URLs for offline scripts: only the dialect matters, no server is contacted.
OFFLINE_URLS = {"mssql": "mssql+pyodbc://", "postgresql": "postgresql+psycopg://"}


def alembic_config(url: str | None = None, output: io.StringIO | None = None) -> Config:
    # Built in code, not read from alembic.ini: the ini is for a DBA running
    # alembic in a checkout; an installed flp finds its migrations in the package.
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    # Alembic's own ini logging would replace ours; keep the CLI's.
    cfg.attributes["configure_logger"] = False
    if url is not None:
        # ConfigParser interpolation: a % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest revision this code knows (what runtime commands expect the database to be at)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations."""
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic raises its own resolution errors for an unknown id
        return False


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


# The key under which script() hands env.py the plan of an offline script.
SCRIPT_PLAN = "flp_script_plan"


@dataclass(frozen=True)
class ScriptPlan:
    """What an offline script does: its direction, ends, and every revision the
    database may be at when the script starts (None: no revision) for it to run
    correctly: where it starts, or where a part of it already brought the database."""

    direction: str  # upgrade or downgrade
    start: str | None
    end: str | None
    states: tuple[str | None, ...]

    def describe(self) -> str:
        return f"{self.direction} from {self.start or 'base'} to {self.end or 'base'}"

    def describe_states(self) -> str:
        return ", ".join(s or "none" for s in self.states)


def _revision(scripts: ScriptDirectory, name: str | None) -> str | None:
    if name in (None, "base"):
        return None
    try:
        found = scripts.get_revision(name)
    except CommandError:
        found = None
    if found is None:
        raise UsageError(f"unknown revision {name!r}: see flp db current and db/migrations/versions")
    return found.revision


def script_plan(from_revision: str | None, to_revision: str, downgrade: bool = False) -> ScriptPlan:
    scripts = ScriptDirectory.from_config(alembic_config())
    if downgrade:
        start = _revision(scripts, from_revision or "head")
        end = _revision(scripts, to_revision)
        steps = list(scripts.iterate_revisions(start or "base", end or "base"))  # newest first
        states = (start, *(s.down_revision for s in steps))
    else:
        start = _revision(scripts, from_revision)
        end = _revision(scripts, to_revision)
        steps = reversed(list(scripts.iterate_revisions(end or "base", start or "base")))
        states = (start, *(s.revision for s in steps))
    if any(isinstance(s, tuple) for s in states):
        raise UsageError("offline scripts support a linear history only (no merge revisions)")
    return ScriptPlan("downgrade" if downgrade else "upgrade", start, end, states)


def script(
    engine: str,
    from_revision: str | None = None,
    to_revision: str = "head",
    downgrade_to: str | None = None,
) -> str:
    """The upgrade (or, with ``downgrade_to``, the downgrade) as one SQL script for a
    DBA: offline, no server needed, re-runnable (env.py guards every migration).

    Upgrade: from ``from_revision`` (default: an empty database) to ``to_revision``.
    Downgrade: from ``from_revision`` (default: head) down to ``downgrade_to``
    (``base``: everything); ``to_revision`` must then stay ``head``.
    """
    if engine not in OFFLINE_URLS:
        raise ValueError(f"engine must be one of {', '.join(OFFLINE_URLS)}; got {engine!r}")
    if downgrade_to is not None and to_revision != "head":
        raise UsageError("give either --to (upgrade) or --downgrade-to, not both")
    out = io.StringIO()
    cfg = alembic_config(OFFLINE_URLS[engine], out)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if downgrade_to is None:
        cfg.attributes[SCRIPT_PLAN] = script_plan(from_revision, to_revision)
        span = to_revision if from_revision is None else f"{from_revision}:{to_revision}"
        command.upgrade(cfg, span, sql=True)
    else:
        cfg.attributes[SCRIPT_PLAN] = script_plan(from_revision, downgrade_to, downgrade=True)
        command.downgrade(cfg, f"{from_revision or 'head'}:{downgrade_to}", sql=True)
    return out.getvalue()
