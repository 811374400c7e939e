-- Undo 0012_daily_report on SQL Server.
DELETE FROM Ops.Setting WHERE JobName = 'daily_report';
DROP INDEX IX_FLP_AIM_History_Delivered ON PLSP.FLP_AIM_History;
DROP INDEX IX_PatientInkluderet_History_Changed ON PLSP.PatientInkluderet_History;
DROP INDEX IX_Patientvaerdier_Converted ON PLSP.Patientvaerdier;
