"""flp demo's upload step: the service on a loopback port, uploads with a minted token, errors shown."""

from __future__ import annotations

from orchestrator.config import Settings
from orchestrator.dev import demo_upload
from orchestrator.dev.demo import Step
from tests.support.uploads import load_relevant


def test_the_demo_uploads_shows_the_errors_and_stops_the_service(db, tmp_path):
    load_relevant(db)
    steps, lines = demo_upload.steps(Settings(data_dir=tmp_path), db, Step)
    assert [s.name for s in steps] == [
        "flp serve (loopback)",
        "upload 3 documents",
        "resync unchanged",
        "full resync as a job",
    ]
    assert steps[1].result == "partly_accepted" and steps[2].result == "accepted"
    assert steps[3].result == "done"
    assert any(
        line.startswith("full resync as a job: HTTP 202, queued; upload_drain succeeded") for line in lines
    )
    text = "\n".join(lines)
    assert "unknown_code" in text and "unknown_unit" in text and "future_date" in text
    assert "unchanged 3" in text  # the resync of the first document is a no-op
    assert "(stopped)" in lines[0]
    for doc in demo_upload.DOCUMENTS:
        assert doc["cpr"] not in text
