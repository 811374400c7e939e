-- Undo 0017_orchestrator_v2 on SQL Server.
-- Rows triggered 'pg_cron' (none are written here; a copy of a PostgreSQL
-- database's rows could hold some) go back to 'agent'. Timetable overrides in
-- Ops.Setting stay: they are the operator's, and older versions ignore them.
UPDATE Ops.JobRun SET TriggeredBy = 'agent' WHERE TriggeredBy = 'pg_cron';
UPDATE Ops.JobSlot SET ClaimedBy = 'agent' WHERE ClaimedBy = 'pg_cron';
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_TriggeredBy;
ALTER TABLE Ops.JobRun WITH CHECK ADD CONSTRAINT CK_JobRun_TriggeredBy CHECK (
    TriggeredBy IN ('orchestrator', 'agent', 'manual', 'demo', 'test')
);
GO
