-- Undo 0026_relevant_changes_v3 on SQL Server.
DROP INDEX IX_Medicin_Atc_Patient ON PLSP.Medicin;
