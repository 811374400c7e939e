"""The versioned procedure files and their signatures.

Each routine lives in ``db/procedures/<engine>/<name>.v<N>.sql``: one routine per
file, one file per released version, never edited after release (a change is a
new version applied by a new migration). Both engines have a file of the same
name, with the same parameters in the same order: ``@Name`` in T-SQL is
``p_Name`` in PL/pgSQL, ``OUTPUT`` is ``INOUT`` or ``OUT``.

The signature reader understands the layout these files are written in (one
parameter per line between the routine name and ``AS`` or ``LANGUAGE``); it is
used by the parity test and by the SQL Server call path, never to rewrite SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from orchestrator.db.files import PROCEDURES_DIR
from orchestrator.db.urls import ENGINES  # noqa: F401  (re-exported: the engines a file exists for)
from orchestrator.errors import FlpError

FILE_RE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.v(?P<version>[0-9]+)\.sql$")
HEADER_RE = re.compile(
    r"CREATE\s+(?:OR\s+(?:ALTER|REPLACE)\s+)?(?P<kind>PROCEDURE|FUNCTION)\s+"
    r"(?P<schema>\w+)\.(?P<name>\w+)\s*(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
# Roles allowed to execute the routines of each schema (see 0001_foundation and
# 0006_operator_reads). Monitor's read routines serve operators and the orchestrator.
SCHEMA_ROLES: dict[str, tuple[str, ...]] = {
    "job": ("flp_orchestrator",),
    "api": ("flp_reader",),
    "upload": ("flp_lps",),
    "monitor": ("flp_orchestrator", "flp_operator"),
}


class ProcedureFileError(FlpError, ValueError):
    """A procedure file does not follow the layout; the message names the file."""


@dataclass(frozen=True)
class Param:
    name: str  # without @ or p_, as written: BatchSize
    type: str  # lower case, as written: int, varchar(100)
    default: str | None  # normalised literal text, or None when required
    output: bool


@dataclass(frozen=True)
class Routine:
    engine: str
    kind: str  # procedure or function
    schema: str
    name: str
    version: int
    path: Path
    params: tuple[Param, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def path_for(engine: str, name: str, version: int) -> Path:
    return PROCEDURES_DIR / engine / f"{name}.v{version}.sql"


def versions(engine: str, root: Path = PROCEDURES_DIR) -> dict[str, list[int]]:
    """Every routine name in one engine's folder with its versions, ascending."""
    found: dict[str, list[int]] = {}
    for path in sorted((root / engine).glob("*.sql")):
        match = FILE_RE.match(path.name)
        if not match:
            raise ProcedureFileError(f"{path}: file name must be <name>.v<N>.sql in lower case")
        found.setdefault(match["name"], []).append(int(match["version"]))
    return {name: sorted(v) for name, v in found.items()}


def _strip_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.DOTALL)
    return re.sub(r"--[^\n]*", " ", sql)


def _split_top_level(text: str) -> list[str]:
    parts, depth, start, quoted = [], 0, 0, False
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _normalise_default(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if text.upper().startswith("N'"):
        text = text[1:]
    return text.lower()


def _parse_mssql_params(rest: str, where: str) -> tuple[Param, ...]:
    # Procedure options (WITH EXECUTE AS OWNER, WITH RECOMPILE) sit between the parameters and AS.
    match = re.match(
        r"(?P<params>.*?)(?:\bWITH\s+[\w\s,=']+?)?\bAS\s+BEGIN\b", rest, re.IGNORECASE | re.DOTALL
    )
    if not match:
        raise ProcedureFileError(f"{where}: no 'AS BEGIN' after the parameter list")
    params = []
    for part in _split_top_level(match["params"]):
        m = re.match(
            r"@(?P<name>\w+)\s+(?P<type>\w+(?:\s*\([^)]*\))?)"
            r"(?:\s*=\s*(?P<default>'[^']*'|N'[^']*'|[-\w.]+))?"
            r"(?:\s+(?P<output>OUTPUT|OUT))?\s*$",
            part,
            re.IGNORECASE,
        )
        if not m:
            raise ProcedureFileError(f"{where}: cannot read parameter {part!r}")
        params.append(
            Param(
                name=m["name"],
                type=re.sub(r"\s+", "", m["type"].lower()),
                default=_normalise_default(m["default"]),
                output=m["output"] is not None,
            )
        )
    return tuple(params)


def _parse_postgresql_params(rest: str, where: str) -> tuple[Param, ...]:
    if not rest.startswith("("):
        raise ProcedureFileError(f"{where}: the parameter list must follow the name")
    depth = 0
    for i, ch in enumerate(rest):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            inner = rest[1:i]
            break
    else:
        raise ProcedureFileError(f"{where}: unbalanced parameter list")
    params = []
    for part in _split_top_level(inner):
        m = re.match(
            r"(?:(?P<mode>INOUT|OUT|IN)\s+)?p_(?P<name>\w+)\s+(?P<type>\w+(?:\s+\w+)?(?:\s*\([^)]*\))?)"
            r"(?:\s+(?:DEFAULT|=)\s+(?P<default>'[^']*'(?:::\w+)?|[-\w.]+))?\s*$",
            part,
            re.IGNORECASE,
        )
        if not m:
            raise ProcedureFileError(f"{where}: cannot read parameter {part!r}")
        default = m["default"]
        if default is not None:
            default = re.sub(r"::\w+$", "", default)
        params.append(
            Param(
                name=m["name"],
                type=re.sub(r"\s+", " ", m["type"].lower()),
                default=_normalise_default(default),
                output=(m["mode"] or "IN").upper() in ("INOUT", "OUT"),
            )
        )
    return tuple(params)


def parse(engine: str, path: Path) -> Routine:
    """Read the routine header of one file."""
    file_match = FILE_RE.match(path.name)
    if not file_match:
        raise ProcedureFileError(f"{path}: file name must be <name>.v<N>.sql in lower case")
    sql = _strip_comments(path.read_text(encoding="utf-8"))
    header = HEADER_RE.search(sql)
    if not header:
        raise ProcedureFileError(f"{path}: no CREATE PROCEDURE or CREATE FUNCTION")
    if header["name"].lower() != file_match["name"]:
        raise ProcedureFileError(
            f"{path}: defines {header['name']}, but the file is named {file_match['name']}"
        )
    rest = header["rest"].strip()
    params = (
        _parse_mssql_params(rest, str(path))
        if engine == "mssql"
        else _parse_postgresql_params(rest, str(path))
    )
    return Routine(
        engine=engine,
        kind=header["kind"].lower(),
        schema=header["schema"],
        name=header["name"].lower(),
        version=int(file_match["version"]),
        path=path,
        params=params,
    )


@cache
def routine(engine: str, name: str, version: int) -> Routine:
    return parse(engine, path_for(engine, name, version))


def read(engine: str, name: str, version: int) -> str:
    path = path_for(engine, name, version)
    if not path.is_file():
        raise ProcedureFileError(f"{path}: no such procedure version")
    return path.read_text(encoding="utf-8")
