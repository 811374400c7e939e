-- Undo 0009_flp_engine on SQL Server.
DROP TRIGGER PLSP.TR_Patientvaerdier_Dirty;
GO
DROP TRIGGER PLSP.TR_Diagnose_Dirty;
GO
DROP TRIGGER PLSP.TR_Medicin_Dirty;
GO
DROP TRIGGER PLSP.TR_Ydelser_Dirty;
GO
DROP TRIGGER PLSP.TR_Egenskaber_Dirty;
GO
DROP TRIGGER PLSP.TR_RelevantDiagnose_Change;
GO
DROP TRIGGER PLSP.TR_RelevantMedicinInklusion_Change;
GO
DROP TRIGGER PLSP.TR_RelevantVaerdiInklusion_Change;
GO
DROP TRIGGER PLSP.TR_RelevantEgenskab_Change;
GO
DROP TRIGGER PLSP.TR_RelevantYdelseAarskontrol_Change;
GO
DROP TRIGGER PLSP.TR_RelevantForloeb_Change;
GO
DROP TABLE PLSP.InclusionSweep;
DROP TABLE PLSP.RelevantChange;
DROP INDEX IX_PatientInkluderetPending_Due ON PLSP.PatientInkluderetPending;
ALTER TABLE PLSP.PatientInkluderetPending DROP CONSTRAINT DF_PatientInkluderetPending_DueUtc;
ALTER TABLE PLSP.PatientInkluderetPending DROP COLUMN DueUtc;
ALTER TABLE PLSP.PatientInkluderet_History DROP COLUMN Evidence;
ALTER TABLE PLSP.PatientInkluderet DROP COLUMN LastAnnualCheckId, Evidence;
DROP INDEX IX_Patientvaerdier_Rejected ON PLSP.Patientvaerdier;
ALTER TABLE PLSP.Patientvaerdier DROP CONSTRAINT CK_Patientvaerdier_ReasonCode;
ALTER TABLE PLSP.Patientvaerdier DROP COLUMN ReasonCode;
DROP TABLE PLSP.RelevantEgenskab;
DROP TABLE PLSP.RelevantYdelseAarskontrol;
DROP TABLE PLSP.RelevantMedicinInklusion;
DROP TABLE PLSP.RelevantVaerdiInklusion;
DROP TABLE PLSP.RelevantVaerdiEnhed;
DROP TABLE PLSP.RelevantForloeb;
GO
