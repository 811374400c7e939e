-- Migration 0026 on PostgreSQL (twin of db/schema/mssql/0026_relevant_changes_v3.up.sql):
-- an index leading with the ATC code and one with the diagnosis code, for
-- Job.relevant_changes_mark v3. A Relevant-list change of one ATC prefix
-- (C10AA) or diagnosis prefix counts and marks the patients with medication or
-- a diagnosis under it: a range of the index instead of a scan of every row
-- on every slice (docs/engine.md, "Relevant-list changes").
-- COLLATE "C" (byte order): the prefix is a range AtcCode >= p AND AtcCode < q
-- whatever the database's collation, which a plain index under a language
-- collation cannot serve; the inclusion check's per-patient lookups keep
-- IX_Medicin_Patient_Atc and IX_Diagnose_Patient_Code of migration 0016.
CREATE INDEX IX_Medicin_Atc_Patient ON PLSP.Medicin (AtcCode COLLATE "C", PatientId);
CREATE INDEX IX_Diagnose_Code_Patient ON PLSP.Diagnose (CodeSystem, Code COLLATE "C", PatientId);
