-- Undo 0012_daily_report on PostgreSQL.
DELETE FROM Ops.Setting WHERE JobName = 'daily_report';
DROP INDEX PLSP.IX_FLP_AIM_History_Delivered;
DROP INDEX PLSP.IX_PatientInkluderet_History_Changed;
DROP INDEX PLSP.IX_Patientvaerdier_Converted;
