-- Undo 0008_aim_pipeline on SQL Server.
DELETE FROM Ops.Setting WHERE JobName IN ('aim_import', 'aim_consume');
GO
DROP INDEX IX_FLP_AIM_Undelivered ON PLSP.FLP_AIM;
GO
ALTER TABLE PLSP.FLP_AIM DROP COLUMN ClaimJobRunId;
GO
DROP TABLE Ops.QueueDeadLetter;
GO
ALTER TABLE Ops.QueueMessage DROP COLUMN ReceiptToken;
GO
