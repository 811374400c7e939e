-- Migration 0026 on SQL Server (twin of db/schema/postgresql/0026_relevant_changes_v3.up.sql):
-- an index leading with the ATC code and one with the diagnosis code, for
-- Job.relevant_changes_mark v3. A Relevant-list change of one ATC prefix
-- (C10AA) or diagnosis prefix counts and marks the patients with medication or
-- a diagnosis under it: a range seek of the index (LIKE @Code + '%' is
-- sargable) instead of a scan of every row on every slice (docs/engine.md,
-- "Relevant-list changes"). The columns' own collation: LIKE matches under it.
-- The inclusion check's per-patient lookups keep IX_Medicin_Patient_Atc and
-- IX_Diagnose_Patient_Code of migration 0016 (add ONLINE = ON on Enterprise Edition).
CREATE NONCLUSTERED INDEX IX_Medicin_Atc_Patient ON PLSP.Medicin (AtcCode, PatientId);
CREATE NONCLUSTERED INDEX IX_Diagnose_Code_Patient ON PLSP.Diagnose (CodeSystem, Code, PatientId);
