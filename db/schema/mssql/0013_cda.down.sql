-- Migration 0013 undone on SQL Server (twin of db/schema/postgresql/0013_cda.down.sql).
DROP TABLE PLSP.CdaAccessLog;
DROP TABLE PLSP.CdaDocumentVersion;
