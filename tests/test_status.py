"""flp status and the Monitor read procedures (issue 6)."""

from __future__ import annotations

from orchestrator.db import migrate


def test_schema_revision_is_the_applied_migration(contract_db):
    with contract_db.connect() as conn:
        out = contract_db.call(conn, "Monitor.schema_revision", {}, ("Revision",))
    assert out == {"Revision": migrate.current(contract_db.url)}
    assert out["Revision"] is not None
