"""``flp aim import | consume | status`` on the embedded defaults (database queue) and SecantusDB."""

from __future__ import annotations

import json

import pytest

from orchestrator import cli
from tests.support.aim import mongo_collection_name, seed_with_pending, set_setting, status_counts


@pytest.fixture
def flp_env(db, monkeypatch, tmp_path, restore_logging):
    monkeypatch.setenv("FLP_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("FLP_DATABASE_URL", db.url)
    monkeypatch.delenv("FLP_QUEUE_URL", raising=False)
    monkeypatch.delenv("FLP_MONGO_URL", raising=False)
    return db


def test_aim_import_status_consume(flp_env, mongo_server, monkeypatch, capsys):
    db = flp_env
    seed_with_pending(db, patients=20, pending=15)
    set_setting(db, "aim_consume", "MongoCollection", mongo_collection_name())

    assert cli.main(["aim", "import", "--dry-run"]) == 0
    assert "dry_run, 15 rows" in capsys.readouterr().out
    assert status_counts(db)[0] == 15

    assert cli.main(["aim", "import"]) == 0
    assert "succeeded, 15 rows" in capsys.readouterr().out

    assert cli.main(["aim", "status", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["pending"], counts["queued"], counts["queue_ready"], counts["dead_letters"]) == (
        0,
        15,
        1,
        0,
    )

    assert cli.main(["aim", "consume", "--once"]) == 2  # no MongoDB configured: a message, not a traceback
    assert "FLP_MONGO_URL" in capsys.readouterr().err

    monkeypatch.setenv("FLP_MONGO_URL", mongo_server.url)
    assert cli.main(["aim", "consume", "--once"]) == 0
    assert "documents=15" in capsys.readouterr().out
    assert status_counts(db).get(2) == sum(status_counts(db).values())

    assert cli.main(["aim", "status"]) == 0
    assert "delivered" in capsys.readouterr().out
