-- Migration 0017 on PostgreSQL: pg_cron records its runs as itself (issue 10).
--
-- A run row's trigger may now be 'pg_cron' (Job.job_run_start version 3):
-- pg_cron's runs were recorded as 'agent' with the host 'pg_cron' before.
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_TriggeredBy;
ALTER TABLE Ops.JobRun ADD CONSTRAINT CK_JobRun_TriggeredBy CHECK (
    TriggeredBy IN ('orchestrator', 'agent', 'pg_cron', 'manual', 'demo', 'test')
);
