-- Migration 0016 on PostgreSQL, undone: the patient indexes of migration 0001 again.

DROP INDEX PLSP.IX_Ydelser_Patient_Service;
CREATE INDEX IX_Ydelser_Patient_Date ON PLSP.Ydelser (PatientId, ServiceDate);

DROP INDEX PLSP.IX_Patientvaerdier_Patient_Code;
CREATE INDEX IX_Patientvaerdier_Patient_Code ON PLSP.Patientvaerdier (PatientId, Code, MeasuredUtc)
    INCLUDE (ValueNumeric, Unit, Comparator);

DROP INDEX PLSP.IX_Egenskaber_Patient_Code;
CREATE INDEX IX_Egenskaber_Patient ON PLSP.Egenskaber (PatientId);

DROP INDEX PLSP.IX_Medicin_Patient_Atc;
CREATE INDEX IX_Medicin_Patient ON PLSP.Medicin (PatientId);

DROP INDEX PLSP.IX_Diagnose_Patient_Code;
CREATE INDEX IX_Diagnose_Patient ON PLSP.Diagnose (PatientId);
