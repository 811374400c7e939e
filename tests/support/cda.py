"""Helpers for the CDA tests (issue 13): a seeded, converted population, the SDTC schema."""

from __future__ import annotations

import datetime as dt
import uuid

from orchestrator.db.connection import Database
from orchestrator.db.databases import create_database, drop_database
from orchestrator.dev import seed
from orchestrator.runner import run_job
from tests.conftest import TEMPLATE_NAME
from tests.support.engine import CONVERT, set_setting
from tests.support.sql import fetch_all


def seeded_database(pg_server_url: str, patients: int, seed_value: int, today: dt.date):
    """A fresh copy of the migrated template with ``patients`` seeded and their values converted
    (the real convert_values job); yields the Database and drops it afterwards."""
    name = f"flp_cda_{uuid.uuid4().hex[:12]}"
    db = Database(create_database(pg_server_url, name, template=TEMPLATE_NAME))
    try:
        seed.seed(db, patients=patients, seed=seed_value, today=today)
        set_setting(db, CONVERT.name, "SleepFactor", "0")
        set_setting(db, CONVERT.name, "BatchSizeStart", "4000")
        result = run_job(db, CONVERT, triggered_by="test")
        assert result.result == "succeeded", result.error
        yield db
    finally:
        db.engine.dispose()
        drop_database(pg_server_url, name)


def cprs(db: Database) -> list[str]:
    return [cpr for (cpr,) in fetch_all(db, "SELECT Cpr FROM PLSP.Patient ORDER BY PatientId")]
