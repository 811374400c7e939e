-- Monitor.schema_revision, version 1.
-- The migration revision applied to this database (Alembic's version_num), so
-- the orchestrator and flp status can compare it with the code's without
-- reading dbo.alembic_version themselves. NULL when no revision row exists.
CREATE OR ALTER PROCEDURE Monitor.schema_revision
    @Revision varchar(32) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF OBJECT_ID(N'dbo.alembic_version', N'U') IS NULL
        SET @Errors += N'Monitor.schema_revision needs the table dbo.alembic_version: the database was not migrated with flp db upgrade. ';

    ----------------------------------------------------------------------------
    -- Check parameters: @Revision is an output only; a value passed in is ignored.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Read the revision (one row: the project has a single line of migrations)
    ----------------------------------------------------------------------------
    SET @Revision = NULL;
    SELECT @Revision = MAX(version_num)
    FROM dbo.alembic_version;
END;
