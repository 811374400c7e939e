-- Undo 0003_log_cleanup on SQL Server. Boundaries the clean-up added to
-- PF_Log_Month stay: PLSP.Log's rows live in those partitions.
DELETE FROM Ops.Setting WHERE JobName = 'log_cleanup';
GO
DROP TABLE PLSP.Log_SwitchOut;
GO
