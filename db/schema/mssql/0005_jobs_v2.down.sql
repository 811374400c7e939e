-- Undo 0005_jobs_v2 on SQL Server.
DROP INDEX IX_FLP_AIM_Delivered ON PLSP.FLP_AIM;
GO
