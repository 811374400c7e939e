-- Migration 0013 undone on PostgreSQL (twin of db/schema/mssql/0013_cda.down.sql).
DROP TABLE PLSP.CdaAccessLog;
DROP TABLE PLSP.CdaDocumentVersion;
