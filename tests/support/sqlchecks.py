"""Quality gates for the two-engine SQL: parse, lint, twin parity, offline script, released files.

Every check takes paths or text and returns a list of problems, one readable line
each naming the file (and line) at fault; an empty list means the check passed.
Tests and CI point them at the real folders, negative tests at temporary ones.

sqlfluff and sqlglot are development tools (the ``dev`` extra), so they are
imported inside the checks that need them, never when the orchestrator runs.
sqlglot only *reads* routine headers here; it never rewrites SQL.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from orchestrator.db import procedures
from orchestrator.db.files import SCHEMA_DIR
from tests.support.paths import REPO_ROOT

SQLFLUFF_CONFIG = REPO_ROOT / ".sqlfluff"
TSQL_DIRS = (procedures.PROCEDURES_DIR / "mssql", SCHEMA_DIR / "mssql")
RELEASED_MANIFEST = procedures.PROCEDURES_DIR / "RELEASED.sha256"

# sqlcmd's batch separator, as db/migrations writes it and sqlcmd reads it.
GO_LINE = re.compile(r"^[ \t]*GO[ \t]*$", re.MULTILINE | re.IGNORECASE)
# Statements SQL Server only accepts as the first statement of a batch.
CREATE_ROUTINE = re.compile(
    r"\bCREATE\s+(?:OR\s+ALTER\s+)?(?P<kind>PROCEDURE|PROC|FUNCTION|TRIGGER|VIEW)\s+(?P<name>[\w.\[\]\"]+)",
    re.IGNORECASE,
)
ALEMBIC_COMMENT = re.compile(r"^[ \t]*--[ \t]*Running (?:upgrade|downgrade)\b", re.MULTILINE)
# sqlcmd's default QUOTED_IDENTIFIER is OFF and a procedure keeps the setting it
# was created with, so the script must set both before any procedure.
OFFLINE_HEADER = ("SET ANSI_NULLS ON", "SET QUOTED_IDENTIFIER ON")
MANIFEST_LINE = re.compile(r"^(?P<sha>[0-9a-f]{64}) [ *](?P<path>\S.*)$")  # sha256sum's format
SNIPPET_CHARS = 40  # how much of an unparsable section a problem quotes


# ---------------------------------------------------------------------------
# sqlfluff: parse and lint (T-SQL)
# ---------------------------------------------------------------------------


@cache
def _sqlfluff_config():
    from sqlfluff.core import FluffConfig

    # As extra config the project's rules also apply to files outside the
    # project (tests' temporary folders), where no .sqlfluff is found.
    return FluffConfig.from_path(str(REPO_ROOT), extra_config_path=str(SQLFLUFF_CONFIG))


def _linter():
    from sqlfluff.core import Linter

    return Linter(config=_sqlfluff_config())


def _sql_files(paths: Iterable[Path | str]) -> tuple[set[Path], list[str]]:
    """The .sql files under ``paths``, and a problem for each path that does not exist."""
    files, problems = set(), []
    for path in map(Path, paths):
        if path.is_dir():
            files |= {p.resolve() for p in path.rglob("*.sql")}
        elif path.is_file():
            files.add(path.resolve())
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def _skipped(expected: set[Path], checked: Iterable[str]) -> list[str]:
    # sqlfluff's API drops a file it skips (size limits) without a word.
    seen = {Path(p).resolve() for p in checked}
    return [f"{p}: skipped by sqlfluff, not checked (see .sqlfluff)" for p in sorted(expected - seen)]


def unparsable_sections(paths: Iterable[Path | str]) -> list[str]:
    """``file:line:col`` of every section sqlfluff (T-SQL) cannot parse, in files or folders."""
    files, problems = _sql_files(paths)
    linter, checked = _linter(), []
    for path in sorted(files):
        for parsed in linter.parse_path(str(path)):
            checked.append(parsed.fname)
            if parsed.tree is None:  # not even templated or lexed
                problems += [
                    f"{parsed.fname}:{v.line_no}:{v.line_pos}: {v.desc()}" for v in parsed.violations
                ]
                continue
            for segment in parsed.tree.recursive_crawl("unparsable"):
                line, col = segment.pos_marker.source_position()
                snippet = segment.raw[:SNIPPET_CHARS]
                problems.append(f"{parsed.fname}:{line}:{col}: unparsable section starting {snippet!r}")
    return problems + _skipped(files, checked)


def lint_problems(paths: Iterable[Path | str]) -> list[str]:
    """Every sqlfluff finding in files or folders, in one lint run.

    Unparsable sections are findings too (code PRS), so a clean result also
    means every file parsed.
    """
    files, problems = _sql_files(paths)
    if not files:
        return problems
    result = _linter().lint_paths(tuple(str(p) for p in sorted(files)))
    checked = []
    for linted_path in result.paths:
        for linted in linted_path.files:
            checked.append(linted.path)
            for v in sorted(linted.violations, key=lambda v: (v.line_no, v.line_pos)):
                problems.append(f"{linted.path}:{v.line_no}:{v.line_pos}: {v.rule_code()} {v.desc()}")
    return problems + _skipped(files, checked)


# ---------------------------------------------------------------------------
# Twin parity: the same routines with the same signatures on both engines
# ---------------------------------------------------------------------------

# A T-SQL parameter type (sqlglot's name for it) and the PostgreSQL types that
# may stand for it in the twin.
TYPE_TWINS = {
    "INT": {"INT"},
    "BIGINT": {"BIGINT"},
    "SMALLINT": {"SMALLINT"},
    "UTINYINT": {"SMALLINT"},  # tinyint
    "BIT": {"BOOLEAN"},
    "VARCHAR": {"VARCHAR", "TEXT"},
    "NVARCHAR": {"VARCHAR", "TEXT"},
    "CHAR": {"CHAR", "BPCHAR"},
    "NCHAR": {"CHAR", "BPCHAR"},
    "DATETIME2": {"TIMESTAMP"},
    "DATETIME": {"TIMESTAMP"},
    "TIMESTAMPTZ": {"TIMESTAMPTZ"},  # datetimeoffset
    "DATE": {"DATE"},
    "TIME": {"TIME"},
    "DECIMAL": {"DECIMAL"},
    "MONEY": {"DECIMAL"},
    "FLOAT": {"DOUBLE", "FLOAT"},
    "UUID": {"UUID"},  # uniqueidentifier
    "VARBINARY": {"VARBINARY"},  # bytea
    "XML": {"XML", "TEXT"},
}
UNBOUNDED = ("MAX",)  # nvarchar(max): PostgreSQL's twin is text or an unsized varchar
POSTGRESQL_PREFIX = "p_"  # @JobName in T-SQL is p_JobName in PL/pgSQL
# A read routine returning rows is a procedure with a result set in T-SQL and a
# function RETURNS TABLE in PL/pgSQL (the one kind difference twins may have).
RETURNS_TABLE = re.compile(r"\)\s*RETURNS\s+TABLE\s*\(", re.IGNORECASE)


@dataclass(frozen=True)
class SignatureParam:
    name: str  # as written, without T-SQL's @ (PostgreSQL's p_ stays)
    output: bool
    default: str | None  # normalised literal, None when the parameter is required
    type: str  # sqlglot's type name: INT, NVARCHAR, TIMESTAMP, ...
    size: tuple[str, ...]  # ('100',), ('9', '3'), ('MAX',) or ()


@dataclass(frozen=True)
class Signature:
    kind: str  # procedure or function
    schema: str
    name: str
    params: tuple[SignatureParam, ...]


def _header(engine: str, text: str) -> str:
    """The routine header only, closed with a dummy body sqlglot can read.

    sqlglot cannot parse T-SQL bodies (and keeps PL/pgSQL ones opaque), so the
    header is cut at the token where the body or the routine options start.
    """
    import sqlglot

    dialect = "tsql" if engine == "mssql" else "postgres"
    tokens = sqlglot.tokenize(text, read=dialect)
    start = next((i for i, t in enumerate(tokens) if t.token_type.name == "CREATE"), None)
    if start is None:
        raise ValueError("no CREATE statement")
    depth = 0
    for i in range(start, len(tokens)):
        tok = tokens[i]
        kind = tok.token_type.name
        depth += (kind == "L_PAREN") - (kind == "R_PAREN")
        if engine == "postgresql" and kind == "R_PAREN" and depth == 0:
            return text[tokens[start].start : tok.end + 1] + " LANGUAGE plpgsql AS $$ $$"
        if engine == "mssql" and depth == 0:
            after_parameter = tokens[i - 1].token_type.name == "PARAMETER"
            returns = kind == "VAR" and tok.text.upper() == "RETURNS" and not after_parameter
            if kind in ("ALIAS", "WITH", "FOR") or returns:
                return text[tokens[start].start : tok.start] + " AS SELECT 1"
    raise ValueError("cannot find the end of the routine header")


def _default(expression, type_name: str) -> str | None:
    from sqlglot import exp

    if expression is None:
        return None
    while isinstance(expression, exp.Cast | exp.Paren):
        expression = expression.this  # 'manual'::varchar is 'manual'
    if isinstance(expression, exp.National):
        expression = exp.Literal.string(expression.name)  # N'x' is 'x'
    if isinstance(expression, exp.Boolean):
        return "1" if expression.this else "0"  # bit 1 is boolean true
    text = expression.sql(dialect="postgres")  # string case matters: 'Y' is not 'y'
    if type_name in ("BIT", "BOOLEAN") and text.lower() in ("'1'", "'true'", "'0'", "'false'"):
        return "1" if text.lower() in ("'1'", "'true'") else "0"
    return text


def read_signature(engine: str, path: Path) -> Signature:
    """Read one routine file's signature with sqlglot (header only)."""
    import sqlglot
    from sqlglot import exp

    create = sqlglot.parse_one(
        _header(engine, path.read_text(encoding="utf-8")), read="tsql" if engine == "mssql" else "postgres"
    )
    routine = create.this if isinstance(create, exp.Create) else None
    if not isinstance(routine, exp.StoredProcedure | exp.UserDefinedFunction):
        raise ValueError("not read as CREATE PROCEDURE or CREATE FUNCTION")
    params = []
    for column in routine.expressions:
        data_type = column.args.get("kind")
        if not isinstance(data_type, exp.DataType):
            raise ValueError(f"parameter {column.sql()} has no type")
        type_name = data_type.this.name
        size = tuple(p.sql().upper() for p in data_type.expressions)
        if engine == "mssql":
            name = column.this.name
            output = bool(column.args.get("output"))
            default = _default(column.args.get("default"), type_name)
        else:
            name = column.this.name
            constraints = column.args.get("constraints") or []
            inout = next((c for c in constraints if isinstance(c, exp.InOutColumnConstraint)), None)
            output = bool(inout and inout.args.get("output"))
            default_constraint = next(
                (
                    c.args["kind"]
                    for c in constraints
                    if isinstance(c.args.get("kind"), exp.DefaultColumnConstraint)
                ),
                None,
            )
            default = _default(default_constraint.this if default_constraint else None, type_name)
        params.append(SignatureParam(name, output, default, type_name, size))
    return Signature(
        kind=create.args["kind"].lower(),
        schema=routine.this.db,
        name=routine.this.name,
        params=tuple(params),
    )


def _type_problems(where: str, mssql: SignatureParam, postgresql: SignatureParam) -> list[str]:
    twins = TYPE_TWINS.get(mssql.type)
    if twins is None:
        return [
            f"{where}: no rule for the PostgreSQL twin of T-SQL type {mssql.type}; "
            "add one to TYPE_TWINS in orchestrator/sqlchecks.py"
        ]
    if postgresql.type not in twins:
        return [
            f"{where}: type {postgresql.type} is no twin of T-SQL {mssql.type}; "
            f"use {' or '.join(sorted(twins))}"
        ]
    if mssql.size == UNBOUNDED:
        if postgresql.type != "TEXT" and postgresql.size:
            return [f"{where}: T-SQL size is MAX, PostgreSQL's is {postgresql.size}: use text"]
    elif mssql.size and postgresql.size and mssql.size != postgresql.size:
        return [f"{where}: size {mssql.size} in T-SQL but {postgresql.size} in PostgreSQL"]
    return []


def _reader_problems(engine: str, path: Path, signature: Signature) -> list[str]:
    """The runtime reads signatures with orchestrator.procedures: it must agree with sqlglot."""
    try:
        routine = procedures.parse(engine, path)
    except procedures.ProcedureFileError as exc:
        return [str(exc)]
    expected = [(p.name, p.output, p.default is not None) for p in signature.params]
    if engine == "postgresql":
        expected = [(n.removeprefix(POSTGRESQL_PREFIX), o, d) for n, o, d in expected]
    got = [(p.name, p.output, p.default is not None) for p in routine.params]
    if got != expected:
        return [
            f"{path}: orchestrator.procedures reads the parameters as {got}, sqlglot as {expected} "
            "(name, output, has default): keep to the layout procedures.py documents"
        ]
    return []


def _pair_problems(
    name: str, mssql: Signature, postgresql: Signature, returns_table: bool = False
) -> list[str]:
    where = f"{name} (mssql vs postgresql)"
    problems = []
    rows_twin = returns_table and (mssql.kind, postgresql.kind) == ("procedure", "function")
    if mssql.kind != postgresql.kind and not rows_twin:
        problems.append(f"{where}: a {mssql.kind} in T-SQL but a {postgresql.kind} in PostgreSQL")
    if mssql.schema.lower() != postgresql.schema.lower():
        problems.append(f"{where}: schema {mssql.schema} in T-SQL but {postgresql.schema} in PostgreSQL")
    if mssql.name.lower() != postgresql.name.lower():
        problems.append(f"{where}: named {mssql.name} in T-SQL but {postgresql.name} in PostgreSQL")
    bad_prefix = [p.name for p in postgresql.params if not p.name.startswith(POSTGRESQL_PREFIX)]
    if bad_prefix:
        problems.append(f"{where}: PostgreSQL parameters {bad_prefix} must start with {POSTGRESQL_PREFIX}")
    mssql_names = [p.name for p in mssql.params]
    postgresql_names = [p.name.removeprefix(POSTGRESQL_PREFIX) for p in postgresql.params]
    if mssql_names != postgresql_names:
        problems.append(
            f"{where}: parameters differ in name or order: T-SQL {mssql_names}, PostgreSQL {postgresql_names}"
        )
        return problems  # pairing the rest by position would only repeat this
    for ms, pg in zip(mssql.params, postgresql.params, strict=True):
        at = f"{where}, parameter {ms.name}"
        if ms.output != pg.output:
            direction = {True: "output", False: "input"}
            problems.append(f"{at}: {direction[ms.output]} in T-SQL but {direction[pg.output]} in PostgreSQL")
        if ms.default != pg.default:
            problems.append(f"{at}: default {ms.default} in T-SQL but {pg.default} in PostgreSQL")
        problems += _type_problems(at, ms, pg)
    return problems


def parity_problems(mssql_dir: Path, postgresql_dir: Path) -> list[str]:
    """Every routine file has a twin of the same name on the other engine, with the
    same kind, schema, name, and parameters (names, order, directions, defaults,
    compatible types)."""
    from sqlglot.errors import SqlglotError

    mssql_files = {p.name: p for p in sorted(Path(mssql_dir).glob("*.sql"))}
    postgresql_files = {p.name: p for p in sorted(Path(postgresql_dir).glob("*.sql"))}
    problems = [
        f"{mssql_files[n]}: no twin {Path(postgresql_dir) / n}"
        for n in mssql_files
        if n not in postgresql_files
    ]
    problems += [
        f"{postgresql_files[n]}: no twin {Path(mssql_dir) / n}"
        for n in postgresql_files
        if n not in mssql_files
    ]
    for file_name in sorted(mssql_files.keys() & postgresql_files.keys()):
        signatures = {}
        for engine, path in (("mssql", mssql_files[file_name]), ("postgresql", postgresql_files[file_name])):
            try:
                signatures[engine] = read_signature(engine, path)
            except (ValueError, SqlglotError) as exc:
                problems.append(f"{path}: cannot read the routine header: {exc}")
                continue
            problems += _reader_problems(engine, path, signatures[engine])
        if len(signatures) == 2:
            pg_text = postgresql_files[file_name].read_text(encoding="utf-8")
            rows = bool(RETURNS_TABLE.search(pg_text))
            problems += _pair_problems(file_name, signatures["mssql"], signatures["postgresql"], rows)
    return problems


# ---------------------------------------------------------------------------
# The offline script for SQL Server (flp db script --engine mssql)
# ---------------------------------------------------------------------------


def _blank_comments_and_strings(sql: str) -> str:
    """``sql`` with comments, string literals and quoted names blanked out.

    Offsets and line breaks stay where they were, so a match in the result has
    the same position in ``sql``; a keyword inside a comment no longer matches.
    """
    out = list(sql)
    i, n = 0, len(sql)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        two = sql[i : i + 2]
        # A sqlcmd command (:on error exit) or a line comment: blank to the end of the line.
        if (sql[i] == ":" and (i == 0 or sql[i - 1] == "\n")) or two == "--":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif two == "/*":
            depth, j = 1, i + 2  # T-SQL block comments nest
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif sql[i] in "'\"[":
            close = "]" if sql[i] == "[" else sql[i]
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if sql[j + 1 : j + 2] == close:  # doubled: an escaped quote
                        j += 2
                        continue
                    break
                j += 1
            blank(i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class Batch:
    line: int  # 1-based line of the script where the batch starts
    text: str


def batches(script: str) -> tuple[list[Batch], Batch]:
    """The GO-terminated batches of a script, and whatever follows the last GO."""
    found, start, line = [], 0, 1
    for go in GO_LINE.finditer(script):
        found.append(Batch(line, script[start : go.start()]))
        line += script.count("\n", start, go.end())
        start = go.end()
    return found, Batch(line, script[start:])


def _line_of(batch: Batch, offset: int) -> int:
    return batch.line + batch.text.count("\n", 0, offset)


def _header_problems(found: list[Batch]) -> list[str]:
    first = next((b for b in found if _blank_comments_and_strings(b.text).strip()), None)
    statements = []
    if first is not None:
        code = _blank_comments_and_strings(first.text)
        statements = [" ".join(s.split()).upper() for s in code.split(";") if s.strip()]
    if tuple(statements) != OFFLINE_HEADER:
        return [
            "line 1: the script must start with the batch "
            "'SET ANSI_NULLS ON; SET QUOTED_IDENTIFIER ON;' followed by GO"
        ]
    return []


def _batch_problems(batch: Batch) -> list[str]:
    code = _blank_comments_and_strings(batch.text)
    problems = []
    for match in CREATE_ROUTINE.finditer(code):
        what = f"CREATE {match['kind'].upper()} {batch.text[match.start('name') : match.end('name')]}"
        if code[: match.start()].strip():
            problems.append(
                f"line {_line_of(batch, match.start())}: {what} is not the first statement of its batch "
                "(a GO is missing before it)"
            )
        elif ALEMBIC_COMMENT.search(batch.text):
            problems.append(
                f"line {_line_of(batch, match.start())}: Alembic's '-- Running upgrade' comment is in the "
                f"batch of {what} and would be stored as part of its text (a GO is missing after it)"
            )
    return problems


def _source_chunks(path: Path) -> list[str]:
    # Schema files hold several GO-separated batches; the script has each one.
    return [c.strip() for c in GO_LINE.split(path.read_text(encoding="utf-8")) if c.strip()]


SQLCMD_COMMAND = re.compile(r"^:", re.MULTILINE)


def sqlcmd_commands_as_comments(script: str) -> str:
    """``script`` with its sqlcmd command lines (``:on error exit``, ``:setvar``) turned
    into comments, line for line: sqlfluff's T-SQL grammar knows only ``:r`` and ``:setvar``."""
    return SQLCMD_COMMAND.sub("-- :", script)


def script_glue(script: str, sources: Iterable[Path] | None = None) -> str:
    """``script`` with every batch that comes verbatim from a source file replaced by
    ``SELECT 1;``: what the migrations and Alembic add around the files (guards,
    NOEXEC, alembic_version, GO). The files themselves are parsed by the lint gate,
    so parsing the glue alone checks the rest of the script in a fraction of the time."""
    chunks = {
        c
        for path in (default_offline_sources() if sources is None else sources)
        for c in _source_chunks(path)
    }
    for chunk in sorted(chunks, key=len, reverse=True):
        script = script.replace(chunk, "SELECT 1;")
    return script


def default_offline_sources() -> list[Path]:
    """Every SQL Server file an upgrade from empty to head applies."""
    return sorted((procedures.PROCEDURES_DIR / "mssql").glob("*.sql")) + sorted(
        (SCHEMA_DIR / "mssql").glob("*.up.sql")
    )


def offline_script_problems(script_text: str, sources: Iterable[Path] | None = None) -> list[str]:
    """What would make the SQL Server offline script fail or store wrong text under ``sqlcmd -I -b``.

    ``sources`` are the files whose text must appear verbatim (default: every
    T-SQL procedure file and every schema ``*.up.sql``): a ``:name`` rendered as
    NULL, or a file no migration applies, shows up here.
    """
    found, rest = batches(script_text)
    problems = _header_problems(found)
    for batch in found:
        problems += _batch_problems(batch)
    if rest.text.strip():
        first_line = _line_of(rest, len(rest.text) - len(rest.text.lstrip()))
        problems.append(f"line {first_line}: the last batch does not end with GO")
        problems += _batch_problems(rest)
    for path in default_offline_sources() if sources is None else sources:
        missing = [c for c in _source_chunks(path) if c not in script_text]
        if missing:
            first = missing[0].splitlines()[0]
            problems.append(
                f"{path}: {len(missing)} part(s) not in the script verbatim, the first starting {first!r} "
                "(a :name rendered as NULL, or no migration applies the file?)"
            )
    return problems


# ---------------------------------------------------------------------------
# Released procedure files never change
# ---------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def released_changes(procedures_dir: Path, manifest: Path) -> list[str]:
    """Released files (listed in ``manifest`` as ``sha256  engine/file``) that changed or went.

    A file not listed is unreleased and may still change. A routine is released
    on both engines at once, so a listed file's twin must be listed too.
    """
    procedures_dir = Path(procedures_dir)
    problems, listed = [], {}
    for number, line in enumerate(Path(manifest).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = MANIFEST_LINE.match(line.rstrip())
        if not match:
            problems.append(f"{manifest}:{number}: not '<sha256>  <engine>/<file>': {line!r}")
            continue
        relative = match["path"]
        if relative in listed:
            problems.append(
                f"{manifest}:{number}: {relative} is listed twice (first on line {listed[relative]})"
            )
            continue
        listed[relative] = number
        path = procedures_dir / relative
        if not path.is_file():
            problems.append(f"{path}: released (manifest line {number}) but missing; released files stay")
        elif sha256_of(path) != match["sha"]:
            problems.append(
                f"{path}: released (manifest line {number}) but changed; put the change in a new "
                "version file <name>.v<N+1>.sql applied by a new migration"
            )
    for relative, number in listed.items():
        engine, _, file_name = relative.partition("/")
        twin_engine = {"mssql": "postgresql", "postgresql": "mssql"}.get(engine)
        if twin_engine is None:
            problems.append(f"{manifest}:{number}: {relative} is not under mssql/ or postgresql/")
        elif f"{twin_engine}/{file_name}" not in listed:
            problems.append(
                f"{manifest}:{number}: {relative} is released but its twin {twin_engine}/{file_name} is not"
            )
    return problems


# ---------------------------------------------------------------------------
# T-SQL production rules of issue 7 (the batch bodies): static, because no SQL
# Server engine runs here. Each takes files and returns one line per problem.
# ---------------------------------------------------------------------------

HINT_LIST = re.compile(r"\bWITH\s*\((?P<hints>[^()]*\bREADPAST\b[^()]*)\)", re.IGNORECASE)
LOCKING_HINTS = ("READCOMMITTEDLOCK", "UPDLOCK")
RCSI_ERROR = "650"  # what a READPAST read under RCSI raises; the comment must name it
ENTRY_SETS = (
    r"SET\s+NOCOUNT\s*,\s*XACT_ABORT\s+ON",
    r"SET\s+IMPLICIT_TRANSACTIONS\s+OFF",
    r"SET\s+DEADLOCK_PRIORITY\s+LOW",
)
ROUTINE_BODY_START = re.compile(r"^\s*AS\s*\n\s*BEGIN\b", re.IGNORECASE | re.MULTILINE)
EXECUTE_AS_OWNER = re.compile(r"\bWITH\s+EXECUTE\s+AS\s+OWNER\b", re.IGNORECASE)
OWNER_CHECK_PARTS = ("SUSER_SNAME(", "owner_sid", "15517", "15404", "ALTER AUTHORIZATION ON DATABASE::")
SWITCH_STATEMENT = re.compile(r"\bSWITCH\s+PARTITION\b", re.IGNORECASE)
# What a SWITCH target must share with its source, as the catalog names it.
SWITCH_TARGET_PARTS = (
    "sys.indexes",
    "is_unique",
    "key_ordinal",
    "is_descending_key",
    "is_included_column",
    "filter_definition",
    "data_compression",
    "sys.data_spaces",
    "partition_ordinal",
    "sys.columns",
)


def latest_tsql_procedures(procedures_dir: Path = procedures.PROCEDURES_DIR) -> list[Path]:
    """The newest version file of every T-SQL routine: what a database at head runs."""
    return [
        Path(procedures_dir) / "mssql" / f"{name}.v{max(found)}.sql"
        for name, found in sorted(procedures.versions("mssql", Path(procedures_dir)).items())
    ]


def _code_lines(path: Path) -> tuple[list[str], list[str]]:
    """The file's lines as written, and the same lines with comments and strings blanked."""
    text = Path(path).read_text(encoding="utf-8")
    return text.splitlines(), _blank_comments_and_strings(text).splitlines()


def readpast_problems(paths: Iterable[Path]) -> list[str]:
    """Every READPAST hint list also holds READCOMMITTEDLOCK or UPDLOCK, with a comment naming error 650.

    With READ_COMMITTED_SNAPSHOT ON, READ COMMITTED reads row versions, and a
    READPAST read raises error 650; a locking hint beside it makes it legal on
    every database. The comment (same line or the two before) says why.
    """
    problems = []
    for path in paths:
        lines, code = _code_lines(path)
        blanked = "\n".join(code)
        for match in HINT_LIST.finditer(blanked):
            line = blanked.count("\n", 0, match.start()) + 1
            hints = {h.strip().upper() for h in match["hints"].split(",")}
            if not hints & set(LOCKING_HINTS):
                problems.append(
                    f"{path}:{line}: READPAST without READCOMMITTEDLOCK or UPDLOCK "
                    "(error 650 on a READ_COMMITTED_SNAPSHOT database)"
                )
            if not any(RCSI_ERROR in lines[i] for i in range(max(0, line - 3), line) if "--" in lines[i]):
                problems.append(f"{path}:{line}: READPAST hint without a comment naming error {RCSI_ERROR}")
    return problems


def set_on_entry_problems(paths: Iterable[Path], required: Iterable[str] = ENTRY_SETS) -> list[str]:
    """Each procedure sets ``required`` (regexes) before its first DECLARE or statement of work."""
    problems = []
    for path in paths:
        code = _blank_comments_and_strings(Path(path).read_text(encoding="utf-8"))
        start = ROUTINE_BODY_START.search(code)
        if not start:
            problems.append(f"{path}: no 'AS BEGIN' body start found")
            continue
        body = code[start.end() :]
        entry = body[: re.search(r"\bDECLARE\b", body).start()] if re.search(r"\bDECLARE\b", body) else body
        for pattern in required:
            if not re.search(pattern, entry, re.IGNORECASE):
                problems.append(f"{path}: {pattern.replace(chr(92) + 's+', ' ')} is not set on entry")
    return problems


def unbounded_lock_wait_problems(paths: Iterable[Path]) -> list[str]:
    """No ``SET LOCK_TIMEOUT -1`` (wait forever) and no minutes-long low-priority wait."""
    problems = []
    for path in paths:
        _, code = _code_lines(path)
        for number, line in enumerate(code, start=1):
            if re.search(r"\bSET\s+LOCK_TIMEOUT\s+-\s*1\b", line, re.IGNORECASE):
                problems.append(f"{path}:{number}: SET LOCK_TIMEOUT -1 waits forever")
        text = Path(path).read_text(encoding="utf-8")
        # Inside a dynamic SQL string too: blanking would hide it.
        for match in re.finditer(r"\bMAX_DURATION\s*=", text, re.IGNORECASE):
            line = text.count("\n", 0, match.start()) + 1
            if not text.splitlines()[line - 1].lstrip().startswith("--"):
                problems.append(f"{path}:{line}: WAIT_AT_LOW_PRIORITY counts in minutes, not LockWaitMs")
    return problems


def execute_as_owner_problems(paths: Iterable[Path]) -> list[str]:
    """A module WITH EXECUTE AS OWNER is called only by one that runs as owner or checks the owner first.

    When the database owner is no login on the server (a restore elsewhere, a
    replica, a removed Windows account) the context switch fails with 15517 /
    15404 before the module's first statement, so the check must sit in a
    caller that has no EXECUTE AS: SUSER_SNAME(owner_sid), the errors caught,
    and a message saying ALTER AUTHORIZATION ON DATABASE::... TO [login].
    Batch procedures (``*_batch``, called by the engine) never run as owner.
    """
    files = {Path(p): Path(p).read_text(encoding="utf-8") for p in paths}
    as_owner = {p for p, t in files.items() if EXECUTE_AS_OWNER.search(_blank_comments_and_strings(t))}
    problems = []
    for path in sorted(as_owner):
        name = path.name.split(".v")[0]
        if name.endswith("_batch"):
            problems.append(
                f"{path}: a batch procedure WITH EXECUTE AS OWNER fails (15517) before it can check the owner"
            )
        for caller, text in files.items():
            code = _blank_comments_and_strings(text)
            if caller in as_owner or not re.search(rf"\bEXEC(?:UTE)?\s+Job\.{name}\b", code, re.IGNORECASE):
                continue
            missing = [part for part in OWNER_CHECK_PARTS if part.lower() not in text.lower()]
            if missing:
                problems.append(f"{caller}: calls Job.{name} (WITH EXECUTE AS OWNER) without {missing}")
    return problems


def switch_target_check_problems(paths: Iterable[Path]) -> list[str]:
    """A procedure that SWITCHes a partition compares the switch target with the source first."""
    problems = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        code = _blank_comments_and_strings(text)
        switch = SWITCH_STATEMENT.search(text)
        if not switch or not re.search(r"\bsp_executesql\b|\bALTER\s+TABLE\b", code, re.IGNORECASE):
            continue
        before = code[: switch.start()]
        missing = [part for part in SWITCH_TARGET_PARTS if part.lower() not in before.lower()]
        if missing:
            problems.append(f"{path}: SWITCH PARTITION without comparing the target first: {missing}")
    return problems


# ---------------------------------------------------------------------------
# T-SQL production rules of issue 7 (the batch engine): the job lock under the
# orchestrator's principal, the engine's bounded lock waits and deadlock
# handling, and the module signature of Job.health_check kept by migrations.
# ---------------------------------------------------------------------------

APPLOCK_CALL = re.compile(
    r"\b(?P<call>sp_getapplock|sp_releaseapplock|APPLOCK_MODE|APPLOCK_TEST)\b", re.IGNORECASE
)
ORCHESTRATOR_PRINCIPAL = "flp_orchestrator"
ENGINE_RULES = (
    (r"\bSET\s+LOCK_TIMEOUT\s+@LockTimeoutMs\b", "SET LOCK_TIMEOUT @LockTimeoutMs before the batch"),
    (r"\bSET\s+DEADLOCK_PRIORITY\s+LOW\b", "SET DEADLOCK_PRIORITY LOW"),
    (r"\bERROR_NUMBER\(\)\s*=\s*1222\b", "a CATCH of error 1222 (lock timeout: left for the next batch)"),
    (r"\bERROR_NUMBER\(\)\s*=\s*1205\b", "a CATCH of error 1205 (deadlock victim: retried)"),
)
RUNNING_LINE = re.compile(
    r"^-- Running (?P<direction>upgrade|downgrade) (?P<source>[^ ,]*) -> (?P<target>[^ ,\n]*)", re.MULTILINE
)
SIGNED_MODULE = "Job.health_check"
SIGNING_CERTIFICATE = "FlpHealthCheckSigner"
FIRST_SIGNING_REVISION = "0004"  # the migration that made module signing the default


def applock_principal_problems(paths: Iterable[Path]) -> list[str]:
    """Every application-lock call names @DbPrincipal / the principal 'flp_orchestrator', never public.

    sp_getapplock's default principal is public: any database user could then
    hold a job's lock and have the job skipped forever.
    """
    problems = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        code = _blank_comments_and_strings(text)
        for match in APPLOCK_CALL.finditer(code):
            line = code.count("\n", 0, match.start()) + 1
            # The call's arguments: to the end of its statement (a ; or the next keyword line).
            end = text.find(";", match.end())
            call = text[match.end() : end if end > 0 else len(text)]
            if re.search(r"'public'", call, re.IGNORECASE):
                problems.append(f"{path}:{line}: {match['call']} under the public principal")
            elif f"'{ORCHESTRATOR_PRINCIPAL}'" not in call:
                problems.append(
                    f"{path}:{line}: {match['call']} without the principal '{ORCHESTRATOR_PRINCIPAL}'"
                )
    return problems


def engine_lock_problems(path: Path) -> list[str]:
    """The batch engine bounds each batch's lock waits and handles deadlocks (issue 7, 6 and 7)."""
    code = _blank_comments_and_strings(Path(path).read_text(encoding="utf-8"))
    return [
        f"{path}: no {what}" for pattern, what in ENGINE_RULES if not re.search(pattern, code, re.IGNORECASE)
    ]


def _sections(script: str) -> list[tuple[str, str, str, str]]:
    """(direction, source, target, text) of each migration in an offline script."""
    marks = list(RUNNING_LINE.finditer(script))
    return [
        (
            m["direction"],
            m["source"],
            m["target"],
            script[m.end() : marks[i + 1].start() if i + 1 < len(marks) else None],
        )
        for i, m in enumerate(marks)
    ]


def signature_problems(
    script: str,
    module: str = SIGNED_MODULE,
    certificate: str = SIGNING_CERTIFICATE,
    since: str = FIRST_SIGNING_REVISION,
) -> list[str]:
    """In every migration from ``since`` on (either direction), each CREATE OR ALTER of ``module``
    is followed, before the migration ends or re-creates it, by ADD SIGNATURE ... BY CERTIFICATE.

    CREATE OR ALTER drops a module's signature; an unsigned health_check loses the
    certificate login's VIEW SERVER STATE and refuses to answer.
    """
    create = re.compile(
        rf"\bCREATE\s+(?:OR\s+ALTER\s+)?PROC(?:EDURE)?\s+{re.escape(module)}\b", re.IGNORECASE
    )
    sign = re.compile(
        rf"\bADD\s+SIGNATURE\s+TO\s+{re.escape(module)}\s+BY\s+CERTIFICATE\s+{re.escape(certificate)}\b",
        re.IGNORECASE,
    )
    problems = []
    for direction, source, target, text in _sections(script):
        revision = target if direction == "upgrade" else source
        if not revision or revision < since:
            continue
        blanked = _blank_comments_and_strings(text)
        creates = [m.start() for m in create.finditer(blanked)]
        for i, at in enumerate(creates):
            until = creates[i + 1] if i + 1 < len(creates) else len(text)
            # Blanking keeps offsets; the signature may sit in a dynamic SQL string, so only comments go.
            tail = re.sub(r"--[^\n]*", "", text[at:until])
            if not sign.search(tail):
                problems.append(
                    f"{direction} {source or 'base'} -> {target or 'base'}: CREATE OR ALTER {module} "
                    f"is not followed by ADD SIGNATURE TO {module} BY CERTIFICATE {certificate}"
                )
    return problems
