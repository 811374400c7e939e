"""The project's own errors. Each one is something a person can act on: the CLI
prints its message on one line and exits with its ``exit_code``, never a traceback."""

from __future__ import annotations


class FlpError(Exception):
    """Base class of every error the project raises on purpose."""

    exit_code = 2  # usage, configuration or an unreachable service
