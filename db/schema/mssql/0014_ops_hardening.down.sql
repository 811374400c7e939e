-- Migration 0014 undone on SQL Server (twin of db/schema/postgresql/0014_ops_hardening.down.sql).
DROP INDEX IX_JobSlot_Slot ON Ops.JobSlot;
DROP INDEX IX_QueueDeadLetter_DeadLettered ON Ops.QueueDeadLetter;
