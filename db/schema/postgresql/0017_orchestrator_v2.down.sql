-- Undo 0017_orchestrator_v2 on PostgreSQL.
-- pg_cron's runs go back to what version 2 of Job.job_run_start recorded
-- (trigger 'agent'); their host stays. Timetable overrides in Ops.Setting stay:
-- they are the operator's, and older versions ignore them.
UPDATE Ops.JobRun SET TriggeredBy = 'agent' WHERE TriggeredBy = 'pg_cron';
UPDATE Ops.JobSlot SET ClaimedBy = 'agent' WHERE ClaimedBy = 'pg_cron';
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_TriggeredBy;
ALTER TABLE Ops.JobRun ADD CONSTRAINT CK_JobRun_TriggeredBy CHECK (
    TriggeredBy IN ('orchestrator', 'agent', 'manual', 'demo', 'test')
);
