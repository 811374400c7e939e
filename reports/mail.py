"""The daily mail: multipart/alternative (plain text, then HTML with the chart as a related
inline PNG referenced by ``cid:``), with its own Message-ID, which the outbox uses to deliver it
exactly once."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from reports.render import Rendered

DOMAIN = "flp.invalid"  # Message-IDs are ours; the domain only has to be stable


def new_content_id() -> str:
    """A Content-ID in angle brackets; the HTML names it without them (``cid:...``)."""
    return make_msgid(domain=DOMAIN)


def build(rendered: Rendered, png: bytes, content_id: str, sender: str, recipients, day) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=f"daily-report.{day.isoformat()}", domain=DOMAIN)
    message["X-FLP-Report-Date"] = day.isoformat()
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    html_part = message.get_payload()[1]
    html_part.add_related(
        png, "image", "png", cid=content_id, disposition="inline", filename="last-14-days.png"
    )
    return message
