-- Undo 0011_uploads on PostgreSQL.
DROP TABLE Ops.UploadRejection;
DROP TABLE Ops.UploadStatistic;
DROP TABLE PLSP.Upload;
DROP INDEX PLSP.UX_Patientvaerdier_UploadKey;
DROP INDEX PLSP.UX_Diagnose_UploadKey;
DROP INDEX PLSP.UX_Medicin_UploadKey;
DROP INDEX PLSP.UX_Ydelser_UploadKey;
DROP INDEX PLSP.UX_Egenskaber_UploadKey;
ALTER TABLE PLSP.Patientvaerdier DROP COLUMN UploadKey, DROP COLUMN ContentHash;
ALTER TABLE PLSP.Diagnose DROP COLUMN UploadKey, DROP COLUMN ContentHash;
ALTER TABLE PLSP.Medicin DROP COLUMN UploadKey, DROP COLUMN ContentHash;
ALTER TABLE PLSP.Ydelser DROP COLUMN UploadKey, DROP COLUMN ContentHash;
ALTER TABLE PLSP.Egenskaber DROP COLUMN UploadKey, DROP COLUMN ContentHash;
ALTER TABLE PLSP.Patient DROP COLUMN UploadDocumentHash;
