-- Migration 0028, undone.
DROP INDEX IF EXISTS Upload.IX_DeadLetterDocument_DeadLettered;
