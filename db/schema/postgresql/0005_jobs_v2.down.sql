-- Undo 0005_jobs_v2 on PostgreSQL.
DROP INDEX PLSP.IX_FLP_AIM_Delivered;
