-- Migration 0014, undone.
DROP INDEX IF EXISTS Ops.IX_JobSlot_Slot;
DROP INDEX IF EXISTS Ops.IX_QueueDeadLetter_DeadLettered;
