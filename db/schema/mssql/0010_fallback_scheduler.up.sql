-- Migration 0010 on SQL Server: the fallback scheduler and missed slots (issue 10).
--
-- A run row may now be 'missed': after downtime a slot older than its job's
-- grace period is not run late but recorded, once, as missed.
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_Status;
ALTER TABLE Ops.JobRun WITH CHECK ADD CONSTRAINT CK_JobRun_Status CHECK (
    Status IN ('running', 'succeeded', 'stopped', 'failed', 'abandoned', 'skipped', 'missed')
);
GO

-- One row per slot of a job's timetable that a scheduler took: the primary
-- key makes exactly one of them (two orchestrators, SQL Server Agent) run each
-- slot, even when one run ends before the other scheduler looks. Rows older
-- than seven days are removed by the next claim of the same job.
CREATE TABLE Ops.JobSlot (
    JobName varchar(100) NOT NULL,
    SlotUtc datetime2(3) NOT NULL,
    ClaimedBy varchar(20) NOT NULL,      -- orchestrator, agent
    Host nvarchar(128) NOT NULL,
    ClaimedUtc datetime2(3) NOT NULL CONSTRAINT DF_JobSlot_ClaimedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_JobSlot PRIMARY KEY CLUSTERED (JobName, SlotUtc)
);
GO

INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('*', 'FallbackAfterSeconds', '300',
        'SQL Agent / pg_cron run a job only when no orchestrator heartbeat is younger than this');
GO
