-- Migration 0023 down on PostgreSQL (twin of db/schema/mssql/0023_convert_staging.down.sql):
-- the values still pending go back into PLSP.Patientvaerdier as new values
-- (status 0, converted in place by Job.convert_values_batch v1), in arrival
-- order, then the pending table goes.
INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, RawTime, Unit, ConversionStatus, ConversionAttempts,
    ReceivedUtc, UploadKey, ContentHash)
SELECT p.PatientId, p.Code, p.RawValue, p.RawTime, p.Unit, 0, 0, p.ReceivedUtc, p.UploadKey, p.ContentHash
FROM PLSP.Patientvaerdier_Pending AS p
ORDER BY p.PendingId;
DROP TABLE PLSP.Patientvaerdier_Pending;
