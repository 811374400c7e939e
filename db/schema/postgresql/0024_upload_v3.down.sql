-- Undo 0024_upload_v3 on PostgreSQL.
DROP TABLE Upload.DeadLetterDocument;
