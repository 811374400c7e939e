"""The orchestrator service: runs every job on its timetable and writes its heartbeat."""

from orchestrator.scheduler.service import Orchestrator, next_runs

__all__ = ["Orchestrator", "next_runs"]
