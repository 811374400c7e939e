-- Migration 0003 on SQL Server: the switch-out table of the log clean-up and its
-- settings.
--
-- Job.log_cleanup_batch empties an old month with ALTER TABLE ... SWITCH
-- PARTITION n TO PLSP.Log_SwitchOut PARTITION n, then TRUNCATE TABLE
-- PLSP.Log_SwitchOut: metadata operations whose cost does not grow with the
-- rows. A switch needs a target of identical structure (columns, types,
-- nullability, clustered key) on the same partition scheme, so the partition
-- numbers match and the data never changes filegroup. Nothing else may use this
-- table; it is empty between runs.

CREATE TABLE PLSP.Log_SwitchOut (
    LogId bigint IDENTITY (1, 1) NOT NULL,
    LoggedUtc datetime2(3) NOT NULL,
    Level varchar(10) NOT NULL,
    Source nvarchar(100) NOT NULL,
    Message nvarchar(2000) NOT NULL,
    CorrelationId uniqueidentifier NULL,
    CONSTRAINT PK_Log_SwitchOut PRIMARY KEY CLUSTERED (LoggedUtc, LogId) ON PS_Log_Month (LoggedUtc)
) ON PS_Log_Month (LoggedUtc);
GO

INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
('log_cleanup', 'RetentionMonths', '0', 'whole months kept before the current UTC month (0 = only the current month)'),
('log_cleanup', 'LockWaitMs', '1000', 'longest wait for a partition lock, milliseconds (asked without queueing: nobody waits behind it)'),
('log_cleanup', 'PartitionMonthsAhead', '12', 'months after the current one that must have a log partition');
GO
