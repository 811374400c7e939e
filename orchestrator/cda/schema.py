"""The HL7 CDA R2 schema with the SDTC extensions (``CDA_SDTC.xsd``), for validating documents.

Where it is: the setting ``cda_schema_dir`` (``FLP_CDA_SCHEMA_DIR``), else
``../shared/cda`` beside the checkout (CI clones the repository with shared/
beside it). The folder holds ``infrastructure/cda/CDA_SDTC.xsd`` (HL7's licence
in each file; we do not copy it into the repository).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from lxml import etree

from orchestrator.errors import FlpError

ENTRY_POINT = Path("infrastructure") / "cda" / "CDA_SDTC.xsd"
REPO_ROOT = Path(__file__).resolve().parents[2]


class SchemaMissingError(FlpError):
    """The SDTC schema folder is not where the settings say."""


def schema_dir(configured: str | None = None) -> Path:
    """The configured folder, FLP_CDA_SCHEMA_DIR, or ../shared/cda beside the checkout."""
    value = configured or os.environ.get("FLP_CDA_SCHEMA_DIR")
    folder = Path(value).expanduser() if value else REPO_ROOT.parent / "shared" / "cda"
    if not (folder / ENTRY_POINT).is_file():
        raise SchemaMissingError(
            f"setting cda_schema_dir (FLP_CDA_SCHEMA_DIR): no {ENTRY_POINT} under {folder} "
            "(the HL7 CDA R2 SDTC schema folder)"
        )
    return folder


@functools.lru_cache(maxsize=4)
def _schema(folder: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(folder / ENTRY_POINT)))


def schema(configured: str | None = None) -> etree.XMLSchema:
    return _schema(schema_dir(configured))


def problems(document: bytes | etree._Element, configured: str | None = None) -> list[str]:
    """The schema's complaints about a document (empty: it validates)."""
    tree = etree.fromstring(document) if isinstance(document, bytes) else document
    xsd = schema(configured)
    if xsd.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in xsd.error_log]
