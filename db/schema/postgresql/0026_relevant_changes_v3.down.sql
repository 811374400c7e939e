-- Undo 0026_relevant_changes_v3 on PostgreSQL.
DROP INDEX IF EXISTS PLSP.IX_Medicin_Atc_Patient;
DROP INDEX IF EXISTS PLSP.IX_Diagnose_Code_Patient;
