-- Undo 0018_upload_bulk on PostgreSQL.
DELETE FROM Ops.Setting WHERE JobName = 'upload_drain';
DROP TABLE Upload.StagedDocument;
ALTER TABLE PLSP.Upload DROP COLUMN DocumentsTotal, DROP COLUMN RowsTotal, DROP COLUMN FullResync, DROP COLUMN StartedUtc, DROP COLUMN FailureReason;
