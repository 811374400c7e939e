-- Migration 0014 on PostgreSQL: the time indexes the Ops retention job (Job.ops_retention_batch
-- version 2) walks, oldest first, to remove old dead letters and job slot claims
-- (PLSP.CdaAccessLog has IX_CdaAccessLog_Accessed from migration 0013).
CREATE INDEX IX_QueueDeadLetter_DeadLettered ON Ops.QueueDeadLetter (DeadLetteredUtc);
CREATE INDEX IX_JobSlot_Slot ON Ops.JobSlot (SlotUtc);
