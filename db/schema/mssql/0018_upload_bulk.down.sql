-- Undo 0018_upload_bulk on SQL Server.
DELETE FROM Ops.Setting WHERE JobName = 'upload_drain';
DROP TABLE Upload.StagedDocument;
GO

ALTER TABLE PLSP.Upload DROP CONSTRAINT DF_Upload_FullResync;
ALTER TABLE PLSP.Upload DROP COLUMN DocumentsTotal, RowsTotal, FullResync, StartedUtc, FailureReason;
GO
