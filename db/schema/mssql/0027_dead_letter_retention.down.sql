-- Migration 0027 undone on SQL Server (twin of db/schema/postgresql/0027_dead_letter_retention.down.sql).
DROP INDEX IF EXISTS IX_DeadLetterDocument_DeadLettered ON Upload.DeadLetterDocument;
