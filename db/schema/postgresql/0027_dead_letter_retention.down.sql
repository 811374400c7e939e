-- Migration 0027, undone.
DROP INDEX IF EXISTS Upload.IX_DeadLetterDocument_DeadLettered;
