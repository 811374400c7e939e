-- Undo 0010_fallback_scheduler on SQL Server.
-- A stop request still open set the job's TimeLimitSeconds to 1: put back the
-- value it saved (Job.job_stop_request clear) before the saved value goes, or
-- every later run of the job stops after its first batch.
DELETE t
FROM Ops.Setting AS t
INNER JOIN Ops.Setting AS v ON t.JobName = v.JobName AND v.Name = 'StopSavedTimeLimitSeconds'
WHERE t.Name = 'TimeLimitSeconds' AND v.Value = N'-';
UPDATE t
SET t.Value = v.Value, t.UpdatedUtc = SYSUTCDATETIME()
FROM Ops.Setting AS t
INNER JOIN Ops.Setting AS v ON t.JobName = v.JobName AND v.Name = 'StopSavedTimeLimitSeconds'
WHERE t.Name = 'TimeLimitSeconds' AND v.Value <> N'-';
DELETE FROM Ops.Setting
WHERE Name IN ('FallbackAfterSeconds', 'StopRequestedRunId', 'StopSavedTimeLimitSeconds');
DROP TABLE Ops.JobSlot;
DELETE FROM Ops.JobRun WHERE Status = 'missed';
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_Status;
ALTER TABLE Ops.JobRun WITH CHECK ADD CONSTRAINT CK_JobRun_Status CHECK (
    Status IN ('running', 'succeeded', 'stopped', 'failed', 'abandoned', 'skipped')
);
GO
