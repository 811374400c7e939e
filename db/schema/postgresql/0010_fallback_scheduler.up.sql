-- Migration 0010 on PostgreSQL: the fallback scheduler and missed slots (issue 10).
--
-- A run row may now be 'missed': after downtime a slot older than its job's
-- grace period is not run late but recorded, once, as missed.
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_Status;
ALTER TABLE Ops.JobRun ADD CONSTRAINT CK_JobRun_Status CHECK (
    Status IN ('running', 'succeeded', 'stopped', 'failed', 'abandoned', 'skipped', 'missed')
);

-- One row per slot of a job's timetable that a scheduler took: the primary
-- key makes exactly one of them (two orchestrators, pg_cron) run each slot,
-- even when one run ends before the other scheduler looks. Rows older than
-- seven days are removed by the next claim of the same job.
CREATE TABLE Ops.JobSlot (
    JobName varchar(100) NOT NULL,
    SlotUtc timestamp(3) NOT NULL,
    ClaimedBy varchar(20) NOT NULL,      -- orchestrator, agent
    Host varchar(128) NOT NULL,
    ClaimedUtc timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    CONSTRAINT PK_JobSlot PRIMARY KEY (JobName, SlotUtc)
);

INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('*', 'FallbackAfterSeconds', '300',
        'SQL Agent / pg_cron run a job only when no orchestrator heartbeat is younger than this');
