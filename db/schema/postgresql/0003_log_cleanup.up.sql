-- Migration 0003 on PostgreSQL: the settings of the log clean-up. No other DDL:
-- old month partitions of PLSP.Log are emptied in place with TRUNCATE (see
-- db/procedures/postgresql/log_cleanup_batch.v1.sql), and the partitions for
-- the months ahead are made by Job.log_partitions_ensure when needed.

INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('log_cleanup', 'RetentionMonths', '0', 'whole months kept before the current UTC month (0 = only the current month)'),
    ('log_cleanup', 'LockWaitMs', '1000', 'longest wait for a partition lock, milliseconds (asked without queueing: nobody waits behind it)'),
    ('log_cleanup', 'PartitionMonthsAhead', '12', 'months after the current one that must have a log partition');
