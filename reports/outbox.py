"""Delivery through an outbox folder: every mail is written there first, then sent.

``<data dir>/outbox/*.eml`` wait; a mail moves to ``outbox/sent/`` only after the SMTP server
accepted it. Between the server's acceptance and that move the process may die: so the
Message-ID is appended (and fsynced) to ``outbox/sent-ids`` as soon as the server accepts, and
the next delivery moves a waiting file whose id is listed without sending it again. The one
window left is between the server's acceptance and the fsync of that line (milliseconds); a
receiver can drop the duplicate by its Message-ID. Deliveries are serialised by a lock file,
so the 23:30 job and ``flp report send`` never send the same file twice at once.

SMTP: ``smtp://[user:password@]host[:port]`` sends after STARTTLS (required: a server that
does not offer it is an error) and logs in when a user is given; ``smtps://`` is TLS from the
start (port 465). Query options: ``cafile=PATH`` trusts a CA file besides the system's (an
internal CA); ``starttls=off`` sends in clear to a relay that has no TLS (no login then).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import fcntl
import logging
import os
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from orchestrator.config import mask_url
from orchestrator.errors import FlpError

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 30
# Lines up to RFC 5322's 998 characters: the subject stays on one line (CPython folds a long one
# onto its own continuation line, which readers then see with a leading space).
POLICY = email.policy.SMTP.clone(max_line_length=998)


class SmtpUnavailable(FlpError):
    """The SMTP server cannot be reached or refused the mail; the mail waits in the outbox."""


class SmtpSettingError(FlpError):
    """FLP_SMTP_URL cannot work as given; the message says why."""


@dataclass
class Delivery:
    sent: list[Path] = field(default_factory=list)  # now in outbox/sent/
    waiting: list[Path] = field(default_factory=list)  # still in the outbox
    error: str | None = None  # why the waiting ones wait (None: no SMTP configured, or none waits)


class Outbox:
    def __init__(self, data_dir: Path):
        self.folder = Path(data_dir) / "outbox"
        self.sent_folder = self.folder / "sent"
        self.sent_ids = self.folder / "sent-ids"

    def put(self, message: EmailMessage) -> Path:
        """Write the mail durably (temporary name, fsync, rename) and return its path."""
        self.sent_folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        day = message.get("X-FLP-Report-Date", "mail")
        path = self.folder / f"{day}-{stamp}-{uuid.uuid4().hex[:8]}.eml"
        temporary = path.with_suffix(".tmp")
        with open(temporary, "wb") as out:
            out.write(message.as_bytes(policy=POLICY))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        _fsync_folder(self.folder)
        return path

    def waiting(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml")) if self.folder.is_dir() else []

    def _accepted_ids(self) -> set[str]:
        if not self.sent_ids.is_file():
            return set()
        return {
            line.strip() for line in self.sent_ids.read_text(encoding="ascii").splitlines() if line.strip()
        }

    def _record_accepted(self, message_id: str) -> None:
        with open(self.sent_ids, "a", encoding="ascii") as out:
            out.write(message_id + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _move_to_sent(self, path: Path) -> Path:
        target = self.sent_folder / path.name
        os.replace(path, target)
        _fsync_folder(self.folder)
        return target

    def deliver(self, smtp_url: str | None) -> Delivery:
        """Send every waiting mail, oldest first; stop at the first SMTP error (the rest wait)."""
        self.sent_folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            waiting = self.waiting()
            delivery = Delivery(waiting=list(waiting))
            if not waiting or smtp_url is None:
                return delivery
            accepted = self._accepted_ids()
            connection = None
            try:
                for path in waiting:
                    raw = path.read_bytes()
                    message = email.message_from_bytes(raw, policy=email.policy.default)
                    message_id = str(message["Message-ID"] or "").strip()
                    if message_id and message_id in accepted:
                        log.info("mail accepted before, moved to sent", extra={"mail": path.name})
                    else:
                        if connection is None:
                            connection = connect(smtp_url)
                        # The file's bytes as written, so what is sent is what waited.
                        recipients = [a for _n, a in getaddresses(message.get_all("To", []))]
                        connection.sendmail(parseaddr(str(message["From"]))[1], recipients, raw)
                        if message_id:
                            self._record_accepted(message_id)
                    delivery.sent.append(self._move_to_sent(path))
                    delivery.waiting.remove(path)
            except (OSError, smtplib.SMTPException) as exc:
                delivery.error = f"SMTP {describe(smtp_url)}: {exc}".strip()
                log.warning("mail kept in the outbox", extra={"error": delivery.error})
            finally:
                if connection is not None:
                    with contextlib.suppress(OSError, smtplib.SMTPException):
                        connection.quit()
            return delivery


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def describe(smtp_url: str) -> str:
    parts = urlsplit(smtp_url)
    return f"{parts.hostname}:{parts.port or (465 if parts.scheme == 'smtps' else 587)}"


def connect(smtp_url: str) -> smtplib.SMTP:
    """An SMTP connection after TLS and login as the URL says (see the module's text)."""
    parts = urlsplit(smtp_url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(options) - {"cafile", "starttls"})
    if unknown or options.get("starttls", "on") not in ("on", "off"):
        raise SmtpSettingError(
            f"setting smtp_url (FLP_SMTP_URL): options are cafile=PATH and starttls=on|off; "
            f"got {mask_url(smtp_url)!r}"
        )
    context = ssl.create_default_context(cafile=options.get("cafile"))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password or "")
    host = parts.hostname or "localhost"
    if parts.scheme == "smtps":
        connection = smtplib.SMTP_SSL(host, parts.port or 465, timeout=TIMEOUT_SECONDS, context=context)
        secure = True
    else:
        connection = smtplib.SMTP(host, parts.port or 587, timeout=TIMEOUT_SECONDS)
        secure = False
        try:
            connection.ehlo()
            if options.get("starttls", "on") == "on":
                if not connection.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        "the server offers no STARTTLS (starttls=off to send in clear)"
                    )
                connection.starttls(context=context)
                connection.ehlo()
                secure = True
        except BaseException:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                connection.close()
            raise
    if user:
        if not secure:
            connection.close()
            raise SmtpSettingError("setting smtp_url (FLP_SMTP_URL): a login needs TLS; drop starttls=off")
        connection.login(user, password)
    return connection
