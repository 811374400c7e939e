-- Undo 0001_foundation on SQL Server: roles, tables, partitioning, schemas.
-- Procedures are dropped by their migrations before this runs.
DROP ROLE flp_lps;
DROP ROLE flp_reader;
DROP ROLE flp_orchestrator;
GO
DROP TABLE Ops.QueueMessage;
DROP TABLE Ops.Heartbeat;
DROP TABLE Ops.Setting;
DROP TABLE Ops.JobRunBatch;
DROP TABLE Ops.JobRun;
DROP TABLE PLSP.Log;
GO
-- Through sp_executesql because sqlfluff's T-SQL grammar lacks DROP PARTITION
-- SCHEME/FUNCTION, and every T-SQL file here must parse.
EXEC sys.sp_executesql N'DROP PARTITION SCHEME PS_Log_Month;';
EXEC sys.sp_executesql N'DROP PARTITION FUNCTION PF_Log_Month;';
GO
DROP TABLE PLSP.Session;
DROP TABLE PLSP.FLP_AIM_History;
DROP TABLE PLSP.FLP_AIM;
DROP TABLE PLSP.RelevantYdelse;
DROP TABLE PLSP.RelevantMedicin;
DROP TABLE PLSP.RelevantDiagnose;
DROP TABLE PLSP.RelevantVaerdi;
DROP TABLE PLSP.PatientInkluderetPending;
DROP TABLE PLSP.PatientInkluderet_History;
DROP TABLE PLSP.PatientInkluderet;
DROP TABLE PLSP.Egenskaber;
DROP TABLE PLSP.Ydelser;
DROP TABLE PLSP.Medicin;
DROP TABLE PLSP.Diagnose;
DROP TABLE PLSP.Patientvaerdier;
DROP TABLE PLSP.Forloebsplan;
DROP TABLE PLSP.Patient;
DROP TABLE PLSP.Klinik;
GO
DROP SCHEMA Upload;
GO
DROP SCHEMA Api;
GO
DROP SCHEMA Job;
GO
DROP SCHEMA Ops;
GO
DROP SCHEMA PLSP;
GO
