"""flp demo's CDA step (issue 13 step 6): one patient's document written to a file and validated."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from orchestrator.cda import reader, schema
from orchestrator.config import Settings
from orchestrator.dev import demo_cda
from orchestrator.dev.demo import Step
from tests.support.cda import seeded_database


@pytest.fixture(scope="module")
def seeded(pg_server_url, template_db_url):
    yield from seeded_database(pg_server_url, 20, 3, dt.datetime.now(dt.UTC).date())


def test_the_demo_writes_one_patients_cda_and_validates_it(seeded, tmp_path):
    settings = dataclasses.replace(Settings(), data_dir=tmp_path)
    step, path, message = demo_cda.step(settings, seeded, Step)
    assert step.result == "ok" and message == "valid against the HL7 CDA R2 SDTC schema"
    assert Path(path).parent == tmp_path / "cda" and path.suffix == ".xml"
    body = path.read_bytes()
    assert schema.problems(body) == []
    assert len(reader.read(body).values) == step.rows > 0


def test_without_the_schema_the_demo_says_it_could_not_validate(seeded, tmp_path):
    settings = dataclasses.replace(Settings(), data_dir=tmp_path, cda_schema_dir=str(tmp_path / "nowhere"))
    step, path, message = demo_cda.step(settings, seeded, Step)
    assert step.result == "not validated" and path.is_file()
    assert "FLP_CDA_SCHEMA_DIR" in message
