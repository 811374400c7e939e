-- Migration 0026 on SQL Server (twin of db/schema/postgresql/0026_relevant_changes_v3.up.sql):
-- an index leading with the ATC code and one with the diagnosis code, for
-- Job.relevant_changes_mark v3. A Relevant-list change of one ATC prefix
-- (C10AA) or diagnosis prefix counts and marks the patients with medication or
-- a diagnosis under it: a range seek of the index (LIKE @Code + '%' is
-- sargable) instead of a scan of every row on every slice (docs/engine.md,
-- "Relevant-list changes"). The columns' own collation: LIKE matches under it.
-- The inclusion check's per-patient lookups keep IX_Medicin_Patient_Atc and
-- IX_Diagnose_Patient_Code of migration 0016.
-- Built ONLINE where the edition can (Enterprise / Developer 3, Azure SQL
-- Database 5, Managed Instance 8: SERVERPROPERTY('EngineEdition')), as
-- migration 0005 does, so uploads keep writing medication and diagnoses during
-- the build; elsewhere (Standard) offline, in a maintenance window
-- (docs/operations.md). Dynamic SQL: ONLINE = ON fails to compile on editions
-- without it.
DECLARE @Online nvarchar(30) = CASE
    WHEN CAST(SERVERPROPERTY('EngineEdition') AS int) IN (3, 5, 8) THEN N' WITH (ONLINE = ON)'
    ELSE N''
END;
DECLARE @AtcIndexSql nvarchar(400) = CONCAT(
    N'CREATE NONCLUSTERED INDEX IX_Medicin_Atc_Patient ON PLSP.Medicin (AtcCode, PatientId)', @Online, N';'
);
DECLARE @DiagnoseIndexSql nvarchar(400) = CONCAT(
    N'CREATE NONCLUSTERED INDEX IX_Diagnose_Code_Patient ON PLSP.Diagnose (CodeSystem, Code, PatientId)',
    @Online,
    N';'
);
EXEC sys.sp_executesql @AtcIndexSql;
EXEC sys.sp_executesql @DiagnoseIndexSql;
