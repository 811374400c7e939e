-- Migration 0016 on PostgreSQL (twin of db/schema/mssql/0016_inclusion_v2.up.sql):
-- covering indexes for the inclusion check (Job.check_inclusion_batch v2), so
-- each evidence lookup of a batch is one index-only seek on (PatientId, code)
-- with no heap fetch. Each replaces the patient index of migration 0001 on the
-- same table: its key starts with the same column(s), so every query that used
-- the old one can use the new one, and no table gets one more index to keep up.

-- Diagnoses of a patient by code system and code, with their dates.
DROP INDEX PLSP.IX_Diagnose_Patient;
CREATE INDEX IX_Diagnose_Patient_Code ON PLSP.Diagnose (PatientId, CodeSystem, Code)
    INCLUDE (DiagnosedDate, EndedDate);

-- Medication of a patient by ATC code, with its dates.
DROP INDEX PLSP.IX_Medicin_Patient;
CREATE INDEX IX_Medicin_Patient_Atc ON PLSP.Medicin (PatientId, AtcCode)
    INCLUDE (StartDate, EndDate);

-- Properties of a patient by code, with their validity.
DROP INDEX PLSP.IX_Egenskaber_Patient;
CREATE INDEX IX_Egenskaber_Patient_Code ON PLSP.Egenskaber (PatientId, Code)
    INCLUDE (ValidFromUtc, ValidToUtc);

-- Values of a patient by code and time: the conversion status joins the
-- included columns (only converted values count).
DROP INDEX PLSP.IX_Patientvaerdier_Patient_Code;
CREATE INDEX IX_Patientvaerdier_Patient_Code ON PLSP.Patientvaerdier (PatientId, Code, MeasuredUtc)
    INCLUDE (ValueNumeric, Unit, Comparator, ConversionStatus);

-- Services of a patient by code (the newest annual check is a seek on the
-- annual-check codes), with the date and id.
DROP INDEX PLSP.IX_Ydelser_Patient_Date;
CREATE INDEX IX_Ydelser_Patient_Service ON PLSP.Ydelser (PatientId, ServiceCode, ServiceDate)
    INCLUDE (YdelseId);
