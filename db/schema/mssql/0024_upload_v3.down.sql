-- Undo 0024_upload_v3 on SQL Server.
DROP TABLE Upload.DeadLetterDocument;
GO
