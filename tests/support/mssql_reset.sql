-- dbo.flp_test_reset: test support only. tests/conftest.py creates it in the
-- SQL Server test database (FLP_TEST_MSSQL_URL); no migration does, and it is
-- never deployed. The contract_db fixture calls it before every contract test
-- on SQL Server, then puts the migrated Ops.Setting rows back, so each test
-- starts from the state a fresh migration leaves, as it does on PostgreSQL
-- (a fresh copy of the migrated template per test).
-- It empties every table in the data schemas PLSP, Ops and Upload: foreign keys off,
-- every row deleted, foreign keys on again WITH CHECK (trusted), in one
-- transaction. Identity values go on counting; no test relies on them.
CREATE OR ALTER PROCEDURE dbo.flp_test_reset
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    DECLARE @Disable nvarchar(MAX) = N'';
    DECLARE @Delete nvarchar(MAX) = N'';
    DECLARE @Enable nvarchar(MAX) = N'';

    SELECT
        @Disable += N'ALTER TABLE ' + QUOTENAME(s.name) + N'.' + QUOTENAME(t.name) + N' NOCHECK CONSTRAINT ALL; ',
        @Delete += N'DELETE FROM ' + QUOTENAME(s.name) + N'.' + QUOTENAME(t.name) + N'; ',
        @Enable += N'ALTER TABLE ' + QUOTENAME(s.name) + N'.' + QUOTENAME(t.name) + N' WITH CHECK CHECK CONSTRAINT ALL; '
    FROM sys.tables AS t
    INNER JOIN sys.schemas AS s ON t.schema_id = s.schema_id
    WHERE s.name IN (N'PLSP', N'Ops', N'Upload');

    BEGIN TRY
        BEGIN TRANSACTION;
        EXEC sys.sp_executesql @Disable;
        EXEC sys.sp_executesql @Delete;
        EXEC sys.sp_executesql @Enable;
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
