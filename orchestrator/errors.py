"""The project's own errors. Each one is something a person can act on: the CLI
prints its message on one line and exits with its ``exit_code``, never a traceback.

Exit codes (docs/operations.md): 0 done, 1 a job failed (or an unexpected error),
2 usage, configuration or an unreachable service, 3 the database's schema revision
is not the one this flp expects, 130 interrupted.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SCHEMA = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away


class FlpError(Exception):
    """Base class of every error the project raises on purpose."""

    exit_code = EXIT_USAGE  # usage, configuration or an unreachable service


class UsageError(FlpError):
    """A command's arguments cannot work; the message says which and why."""


class DatabaseUnreachable(FlpError):
    """No connection to the database: the message names host, port and the driver's reason."""


class MissingExtra(FlpError):
    """An optional dependency (the SQL Server driver) is not installed; the message names the extra."""


class SchemaMismatch(FlpError):
    """The database's migration revision is not this flp's head (behind, ahead or none)."""

    exit_code = EXIT_SCHEMA

    def __init__(self, message: str, applied: str | None = None, expected: str | None = None) -> None:
        super().__init__(message)
        self.applied = applied
        self.expected = expected


# PL/pgSQL twins name parameters p_Name; a person reads the T-SQL name @Name.
_PG_PARAMETER = re.compile(r"\bp_([A-Z][A-Za-z0-9]*)\b")


def database_message(error: str) -> str:
    """A database error on one line, for a person and the log: without PL/pgSQL's CONTEXT
    lines (Ops.JobRun keeps them), parameters by their T-SQL names (@TimeLimitSeconds)."""
    text = error.split("CONTEXT:", 1)[0]
    text = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return _PG_PARAMETER.sub(r"@\1", text)
