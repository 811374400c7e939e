-- Undo 0016_inclusion_v2 on SQL Server: the patient indexes of migration 0001 again.
CREATE NONCLUSTERED INDEX IX_Ydelser_Patient_Date ON PLSP.Ydelser (PatientId, ServiceDate);
DROP INDEX IX_Ydelser_Patient_Service ON PLSP.Ydelser;

CREATE NONCLUSTERED INDEX IX_Patientvaerdier_Patient_Code
ON PLSP.Patientvaerdier (PatientId, Code, MeasuredUtc)
INCLUDE (ValueNumeric, Unit, Comparator)
WITH (DROP_EXISTING = ON);

CREATE NONCLUSTERED INDEX IX_Egenskaber_Patient ON PLSP.Egenskaber (PatientId);
DROP INDEX IX_Egenskaber_Patient_Code ON PLSP.Egenskaber;

CREATE NONCLUSTERED INDEX IX_Medicin_Patient ON PLSP.Medicin (PatientId);
DROP INDEX IX_Medicin_Patient_Atc ON PLSP.Medicin;

CREATE NONCLUSTERED INDEX IX_Diagnose_Patient ON PLSP.Diagnose (PatientId);
DROP INDEX IX_Diagnose_Patient_Code ON PLSP.Diagnose;
