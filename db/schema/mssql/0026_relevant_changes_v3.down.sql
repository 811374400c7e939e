-- Undo 0026_relevant_changes_v3 on SQL Server.
DROP INDEX IF EXISTS IX_Medicin_Atc_Patient ON PLSP.Medicin;
DROP INDEX IF EXISTS IX_Diagnose_Code_Patient ON PLSP.Diagnose;
