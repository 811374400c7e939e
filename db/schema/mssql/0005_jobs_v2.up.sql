-- Migration 0005 on SQL Server: the index the archive's keyset pick seeks on.
--
-- Job.archive_aim_batch picks the next @BatchSize rows with
--   WHERE a.Id > @FromId AND a.Status = 2 AND a.DeliveredUtc < @CutoffUtc ORDER BY a.Id
-- On the clustered key alone Status = 2 is a residual predicate: every pending
-- and queued row (and every ghost record the earlier batches left) after
-- @FromId is read and thrown away. This filtered index holds the delivered rows
-- only, in Id order, with DeliveredUtc included: the pick is an ordered range
-- seek (Id > @FromId) that reads delivered rows and stops after @BatchSize of
-- them. The predicate Status = 2 is a literal in the procedure, so the
-- optimizer matches the filter in every plan, parameterised or not.
-- Filtered indexes need ANSI_NULLS, QUOTED_IDENTIFIER, ANSI_PADDING,
-- ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL ON and NUMERIC_ROUNDABORT
-- OFF in every session that changes PLSP.FLP_AIM (error 1934 otherwise), as
-- IX_FLP_AIM_Pending already does; sqlcmd needs -I.
-- Built ONLINE where the edition can (Enterprise / Developer 3, Azure SQL
-- Database 5, Managed Instance 8: SERVERPROPERTY('EngineEdition')), so the
-- AIM fetcher and FlpAimImport keep writing PLSP.FLP_AIM during the build;
-- elsewhere (Standard) offline, short since the archive keeps the table small.
-- Dynamic SQL: ONLINE = ON fails to compile on editions without it.
DECLARE @DeliveredIndexSql nvarchar(400) = CONCAT(
    N'CREATE NONCLUSTERED INDEX IX_FLP_AIM_Delivered ON PLSP.FLP_AIM (Id) INCLUDE (DeliveredUtc) WHERE Status = 2',
    CASE WHEN CAST(SERVERPROPERTY('EngineEdition') AS int) IN (3, 5, 8) THEN N' WITH (ONLINE = ON)' END,
    N';'
);
EXEC sys.sp_executesql @DeliveredIndexSql;
GO
