-- Undo 0011_uploads on SQL Server.
DROP TABLE Ops.UploadRejection;
DROP TABLE Ops.UploadStatistic;
DROP TABLE PLSP.Upload;
GO

DROP INDEX UX_Patientvaerdier_UploadKey ON PLSP.Patientvaerdier;
DROP INDEX UX_Diagnose_UploadKey ON PLSP.Diagnose;
DROP INDEX UX_Medicin_UploadKey ON PLSP.Medicin;
DROP INDEX UX_Ydelser_UploadKey ON PLSP.Ydelser;
DROP INDEX UX_Egenskaber_UploadKey ON PLSP.Egenskaber;
GO

ALTER TABLE PLSP.Patientvaerdier DROP COLUMN UploadKey, ContentHash;
ALTER TABLE PLSP.Diagnose DROP COLUMN UploadKey, ContentHash;
ALTER TABLE PLSP.Medicin DROP COLUMN UploadKey, ContentHash;
ALTER TABLE PLSP.Ydelser DROP COLUMN UploadKey, ContentHash;
ALTER TABLE PLSP.Egenskaber DROP COLUMN UploadKey, ContentHash;
ALTER TABLE PLSP.Patient DROP COLUMN UploadDocumentHash;
GO
