-- Undo 0003_log_cleanup on PostgreSQL. Month partitions the clean-up created
-- stay: they hold log rows and are ordinary partitions of PLSP.Log.
DELETE FROM Ops.Setting WHERE JobName = 'log_cleanup';
