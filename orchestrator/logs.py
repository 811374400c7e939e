"""Structured logs (one key=value line per event), with CPR numbers masked.

Every handler gets ``CprMaskFilter``: whatever a message or its extra fields
hold, a CPR-shaped number (DDMMYY-SSSS or ten digits) never reaches a log.
"""

from __future__ import annotations

import logging
import re
import sys

CPR_PATTERN = re.compile(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)")
CPR_MASK = "XXXXXX-XXXX"
# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


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


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..." key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS:
                fields[key] = value
        if record.exc_info:
            fields["exc"] = mask_cpr(self.formatException(record.exc_info))
        return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(CprMaskFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pgserver and Alembic's plugin loader narrate at INFO; their warnings still show.
    for noisy in ("pgserver", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
