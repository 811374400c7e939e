-- Migration 0016 on SQL Server (twin of db/schema/postgresql/0016_inclusion_v2.up.sql):
-- covering indexes for the inclusion check (Job.check_inclusion_batch v2), so
-- each evidence lookup of a batch is one seek on (PatientId, code) with no key
-- lookup into the clustered index. Each replaces the patient index of
-- migration 0001 on the same table: its key starts with the same column(s), so
-- every query that used the old one can use the new one, and no table gets
-- one more index to keep up. The new index is built before the old one goes,
-- so no query is left without one (add ONLINE = ON on Enterprise Edition).

-- Diagnoses of a patient by code system and code, with their dates.
CREATE NONCLUSTERED INDEX IX_Diagnose_Patient_Code ON PLSP.Diagnose (PatientId, CodeSystem, Code)
    INCLUDE (DiagnosedDate, EndedDate);
DROP INDEX IX_Diagnose_Patient ON PLSP.Diagnose;

-- Medication of a patient by ATC code, with its dates.
CREATE NONCLUSTERED INDEX IX_Medicin_Patient_Atc ON PLSP.Medicin (PatientId, AtcCode)
    INCLUDE (StartDate, EndDate);
DROP INDEX IX_Medicin_Patient ON PLSP.Medicin;

-- Properties of a patient by code, with their validity.
CREATE NONCLUSTERED INDEX IX_Egenskaber_Patient_Code ON PLSP.Egenskaber (PatientId, Code)
    INCLUDE (ValidFromUtc, ValidToUtc);
DROP INDEX IX_Egenskaber_Patient ON PLSP.Egenskaber;

-- Values of a patient by code and time: the conversion status joins the
-- included columns (only converted values count). Same name: rebuilt in place.
CREATE NONCLUSTERED INDEX IX_Patientvaerdier_Patient_Code
ON PLSP.Patientvaerdier (PatientId, Code, MeasuredUtc)
INCLUDE (ValueNumeric, Unit, Comparator, ConversionStatus)
WITH (DROP_EXISTING = ON);

-- Services of a patient by code (the newest annual check is a seek on the
-- annual-check codes), with the date; YdelseId is the clustered key, in every
-- nonclustered index already.
CREATE NONCLUSTERED INDEX IX_Ydelser_Patient_Service ON PLSP.Ydelser (PatientId, ServiceCode, ServiceDate);
DROP INDEX IX_Ydelser_Patient_Date ON PLSP.Ydelser;
