"""Run the orchestrator service in a child process with a compressed timetable (tests only).

    python -m tests.support.service_main '{"url": ..., "jobs": {"session_purge": {"every_seconds": 5}}, ...}'

The jobs are the registry's (or a test job given a procedure), with the
timetable replaced; the service is the real one: its loop, threads, claims,
heartbeat, signals and stop. Logs go to stderr as ``flp orchestrator`` writes them.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from orchestrator import logs
from orchestrator.db.connection import Database
from orchestrator.jobs import JOBS, Job, Timetable
from orchestrator.scheduler import Orchestrator


def main(spec: dict) -> int:
    logs.setup("DEBUG" if spec.get("debug") else "INFO")
    jobs = {}
    for name, timetable in spec["jobs"].items():
        timetable = dict(timetable)
        procedure = timetable.pop("procedure", None)
        job = JOBS.get(name) or Job(name, procedure or f"Job.{name}", "test job", Timetable(every_minutes=1))
        jobs[name] = dataclasses.replace(job, timetable=Timetable(**timetable))
    orchestrator = Orchestrator(
        Database(spec["url"]),
        component=spec.get("component"),
        host=spec.get("host", "test-host"),
        jobs=jobs,
        heartbeat_seconds=spec.get("heartbeat_seconds", 30),
        stop_wait_seconds=spec.get("stop_wait_seconds", 30),
    )
    try:
        orchestrator.run_forever()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
