-- Undo 0026_relevant_changes_v3 on PostgreSQL.
DROP INDEX PLSP.IX_Medicin_Atc_Patient;
