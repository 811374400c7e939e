-- Undo 0001_foundation on SQL Server: roles, tables, partitioning, schemas.
-- Procedures are dropped by their migrations before this runs.
-- A DBA adds users to the roles (docs/operations.md), and DROP ROLE fails with
-- error 15144 while a role has members, so every member is dropped first.
DECLARE @DropMembers nvarchar(MAX) = N'';
SELECT @DropMembers += N'ALTER ROLE ' + QUOTENAME(r.name) + N' DROP MEMBER ' + QUOTENAME(m.name) + N'; '
FROM sys.database_role_members AS rm
INNER JOIN sys.database_principals AS r ON rm.role_principal_id = r.principal_id
INNER JOIN sys.database_principals AS m ON rm.member_principal_id = m.principal_id
WHERE r.name IN (N'flp_lps', N'flp_reader', N'flp_orchestrator');
EXEC sys.sp_executesql @DropMembers;
GO
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
