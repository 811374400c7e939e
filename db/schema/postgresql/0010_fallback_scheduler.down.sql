-- Undo 0010_fallback_scheduler on PostgreSQL.
DELETE FROM Ops.Setting
WHERE Name IN ('FallbackAfterSeconds', 'StopRequestedRunId', 'StopSavedTimeLimitSeconds');
DROP TABLE Ops.JobSlot;
DELETE FROM Ops.JobRun WHERE Status = 'missed';
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_Status;
ALTER TABLE Ops.JobRun ADD CONSTRAINT CK_JobRun_Status CHECK (
    Status IN ('running', 'succeeded', 'stopped', 'failed', 'abandoned', 'skipped')
);
