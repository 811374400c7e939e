"""Structured logs on stderr (one key=value or JSON line per event), with CPR numbers masked.

Every handler gets ``CprMaskFilter``: whatever a message or its extra fields
hold, a CPR-shaped number (DDMMYY-SSSS or ten digits) never reaches a log.
What a person asked for goes to stdout; logs never do.
"""

from __future__ import annotations

import json
import logging
import re
import sys

CPR_PATTERN = re.compile(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)")
CPR_MASK = "XXXXXX-XXXX"
# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Libraries that narrate at INFO (pgserver's start-up, Alembic's plugin loader and
# migration context): their warnings always show, their INFO only with -vv.
NOISY_LOGGERS = ("pgserver", "alembic")
DEFAULT_LEVEL = "WARNING"  # interactive commands; the orchestrator service logs at INFO


def mask_cpr(text: str) -> str:
    return CPR_PATTERN.sub(CPR_MASK, text)


class CprMaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_cpr(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRS or value is None:
                continue
            # Lists, numbers and the like are rendered with str() by the formatter.
            masked = mask_cpr(str(value))
            if masked != str(value):
                setattr(record, key, masked)
        return True


def _fields(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": formatter.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS:
            fields[key] = value
    if record.exc_info:
        fields["exc"] = mask_cpr(formatter.formatException(record.exc_info))
    return fields


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..." key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_quote(v)}" for k, v in _fields(self, record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line, the same fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(self, record), default=str, ensure_ascii=False)


FORMATTERS = {"keyvalue": KeyValueFormatter, "json": JsonFormatter}


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def level_for(configured: str | None, verbosity: int = 0, default: str = DEFAULT_LEVEL) -> str:
    """The effective level: FLP_LOG_LEVEL when set, else -v (INFO) / -vv (DEBUG), else ``default``."""
    if configured:
        return configured
    if verbosity >= 2:
        return "DEBUG"
    if verbosity == 1:
        return "INFO" if logging.getLevelName(default) > logging.INFO else default
    return default


def setup(level: str = "INFO", fmt: str = "keyvalue") -> None:
    """One handler on the root logger, writing ``fmt`` lines to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[fmt]())
    handler.addFilter(CprMaskFilter())
    # The handler's level too: a module logger set lower (for progress) must not reach stderr.
    handler.setLevel(level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
