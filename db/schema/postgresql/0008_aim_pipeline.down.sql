-- Undo 0008_aim_pipeline on PostgreSQL.
DELETE FROM Ops.Setting WHERE JobName IN ('aim_import', 'aim_consume');
DROP INDEX PLSP.IX_FLP_AIM_Undelivered;
ALTER TABLE PLSP.FLP_AIM DROP COLUMN ClaimJobRunId;
DROP TABLE Ops.QueueDeadLetter;
ALTER TABLE Ops.QueueMessage DROP COLUMN ReceiptToken;
