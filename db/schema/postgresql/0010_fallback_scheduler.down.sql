-- Undo 0010_fallback_scheduler on PostgreSQL.
-- A stop request still open set the job's TimeLimitSeconds to 1: put back the
-- value it saved (Job.job_stop_request clear) before the saved value goes, or
-- every later run of the job stops after its first batch.
DELETE FROM Ops.Setting AS t
USING Ops.Setting AS v
WHERE t.JobName = v.JobName AND v.Name = 'StopSavedTimeLimitSeconds'
    AND t.Name = 'TimeLimitSeconds' AND v.Value = '-';
UPDATE Ops.Setting AS t
SET Value = v.Value, UpdatedUtc = now() AT TIME ZONE 'UTC'
FROM Ops.Setting AS v
WHERE t.JobName = v.JobName AND v.Name = 'StopSavedTimeLimitSeconds'
    AND t.Name = 'TimeLimitSeconds' AND v.Value <> '-';
DELETE FROM Ops.Setting
WHERE Name IN ('FallbackAfterSeconds', 'StopRequestedRunId', 'StopSavedTimeLimitSeconds');
DROP TABLE Ops.JobSlot;
DELETE FROM Ops.JobRun WHERE Status = 'missed';
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_Status;
ALTER TABLE Ops.JobRun ADD CONSTRAINT CK_JobRun_Status CHECK (
    Status IN ('running', 'succeeded', 'stopped', 'failed', 'abandoned', 'skipped')
);
