-- Job.startup_check, version 1.
-- Start-up checks in the manner of Ola Hallengren's: what the FLP procedures
-- need from the server and the database, checked once when an orchestrator
-- starts (orchestrator.db.startup) or by a DBA before the first deploy. Each
-- check is one line of @Report, '<status> <check>: <detail>', status ok,
-- FAILED or info; @Failed counts the FAILED lines. With @RaiseOnFailure = 'Y'
-- (the default, for a person in sqlcmd) any failed check raises one error that
-- lists every failed line, each naming its check. It reads metadata only.
--   EngineVersion        SQL Server 2019 (15.x) or later; Azure SQL Database and
--                        Managed Instance are versionless and pass.
--   EngineEdition        Standard, Enterprise (Developer), Azure SQL Database or
--                        Managed Instance; Express fails (10 GB, no Agent).
--   CompatibilityLevel   at least 130 (OPENJSON needs it); 150 or 160 is usual.
--   SetOptions           the caller's session has the SET options that DML on
--                        tables with filtered indexes needs: ANSI_PADDING,
--                        ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL ON
--                        and NUMERIC_ROUNDABORT OFF (the ODBC driver's
--                        defaults; its ARITHABORT OFF passes: ANSI_WARNINGS
--                        ON makes it ON at level 90+). Inside a procedure ANSI_NULLS and
--                        QUOTED_IDENTIFIER are the module's own (read here as
--                        well, but ProcedureSetOptions is the check for them).
--   ProcedureSetOptions  every FLP module was created with ANSI_NULLS and
--                        QUOTED_IDENTIFIER ON (a script run by sqlcmd without
--                        -I stores QUOTED_IDENTIFIER OFF, and the module then
--                        fails on the filtered indexes). Metadata visibility:
--                        a login sees the modules of the schemas it may
--                        execute, so the orchestrator checks Job and Monitor;
--                        a DBA running it sees every schema.
--   ReadCommittedSnapshot  info only: RCSI on or off, both are supported (the
--                        batch procedures read with READCOMMITTEDLOCK).
--   DatabaseOwner        the database owner is a login that exists and matches
--                        the dbo user (after a restore to another server, on an
--                        availability-group replica or when an AD owner left,
--                        EXECUTE AS OWNER fails with 15517/15404); the fix is
--                        ALTER AUTHORIZATION ON DATABASE::<db> TO <login>.
--
-- Differences from the PostgreSQL twin, one line each:
--   * CompatibilityLevel here; PostgreSQL has none and checks DatabaseEncoding (UTF8) in its place.
--   * SetOptions here are SESSIONPROPERTY values; PostgreSQL checks standard_conforming_strings.
--   * ProcedureSetOptions here are sys.sql_modules flags; PostgreSQL checks that SECURITY DEFINER routines fix search_path.
--   * DatabaseOwner here needs a login matching dbo; PostgreSQL roles are cluster-wide and SECURITY DEFINER needs no login, so it reports the owner (ok).
CREATE OR ALTER PROCEDURE Job.startup_check
    @RaiseOnFailure char(1) = 'Y',
    @Failed int = NULL OUTPUT,
    @Report nvarchar(MAX) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Lines TABLE (
        LineNumber int IDENTITY (1, 1) NOT NULL PRIMARY KEY,
        Status varchar(10) NOT NULL,
        CheckName varchar(40) NOT NULL,
        Detail nvarchar(600) NOT NULL
    );
    DECLARE @NewLine nchar(1) = NCHAR(10);
    DECLARE @Message nvarchar(MAX);
    DECLARE @LineNumber int = 1;
    DECLARE @LineCount int;
    DECLARE @EngineEdition int = CAST(SERVERPROPERTY('EngineEdition') AS int);
    DECLARE @MajorVersion int = CAST(SERVERPROPERTY('ProductMajorVersion') AS int);
    DECLARE @ProductVersion nvarchar(128) = CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128));
    DECLARE @Edition nvarchar(128) = CAST(SERVERPROPERTY('Edition') AS nvarchar(128));
    DECLARE @CompatibilityLevel int;
    DECLARE @Rcsi bit;
    DECLARE @OwnerSid varbinary(85);
    DECLARE @OwnerLogin nvarchar(128);
    DECLARE @DboSid varbinary(85);
    DECLARE @WrongOptions nvarchar(400) = N'';
    DECLARE @WrongModules nvarchar(600);

    ----------------------------------------------------------------------------
    -- Check requirements: none (metadata only, inside or outside a transaction)
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @RaiseOnFailure IS NULL OR @RaiseOnFailure NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @RaiseOnFailure is not supported: use Y (raise an error when a check fails) or N (report only). ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Log start: nothing is logged (a read-only check, run at every start)
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    -- EngineVersion
    INSERT INTO @Lines (Status, CheckName, Detail)
    SELECT
        CASE WHEN @EngineEdition IN (5, 8) OR @MajorVersion >= 15 THEN 'ok' ELSE 'FAILED' END,
        'EngineVersion',
        CONCAT(
            N'SQL Server ', @ProductVersion,
            CASE WHEN @EngineEdition IN (5, 8) OR @MajorVersion >= 15 THEN N'' ELSE N': SQL Server 2019 (15.x) or later is needed' END
        );

    -- EngineEdition
    INSERT INTO @Lines (Status, CheckName, Detail)
    SELECT
        CASE WHEN @EngineEdition IN (2, 3, 5, 8) THEN 'ok' ELSE 'FAILED' END,
        'EngineEdition',
        CONCAT(
            @Edition, N' (engine edition ', @EngineEdition, N')',
            CASE
                WHEN @EngineEdition IN (2, 3, 5, 8) THEN N''
                ELSE N': use Standard, Enterprise, Azure SQL Database or Managed Instance (Express has a 10 GB limit and no Agent)'
            END
        );

    -- CompatibilityLevel, ReadCommittedSnapshot and the owner, from one row
    SELECT
        @CompatibilityLevel = d.compatibility_level,
        @Rcsi = d.is_read_committed_snapshot_on,
        @OwnerSid = d.owner_sid
    FROM sys.databases AS d
    WHERE d.database_id = DB_ID();

    INSERT INTO @Lines (Status, CheckName, Detail)
    SELECT
        CASE WHEN @CompatibilityLevel >= 130 THEN 'ok' ELSE 'FAILED' END,
        'CompatibilityLevel',
        CONCAT(
            N'database ', QUOTENAME(DB_NAME()), N' is at level ', @CompatibilityLevel,
            CASE
                WHEN @CompatibilityLevel >= 130 THEN N''
                ELSE CONCAT(N': set at least 130 (ALTER DATABASE ', QUOTENAME(DB_NAME()), N' SET COMPATIBILITY_LEVEL = 150)')
            END
        );

    -- SetOptions (the caller's session)
    IF SESSIONPROPERTY('ANSI_NULLS') <> 1
        SET @WrongOptions += N'ANSI_NULLS OFF, ';
    IF SESSIONPROPERTY('ANSI_PADDING') <> 1
        SET @WrongOptions += N'ANSI_PADDING OFF, ';
    IF SESSIONPROPERTY('ANSI_WARNINGS') <> 1
        SET @WrongOptions += N'ANSI_WARNINGS OFF, ';
    -- ODBC and OLE DB sessions report ARITHABORT OFF; with ANSI_WARNINGS ON at
    -- level 90 or later it is in effect ON (filtered indexes accept the session).
    IF SESSIONPROPERTY('ARITHABORT') <> 1 AND (SESSIONPROPERTY('ANSI_WARNINGS') <> 1 OR @CompatibilityLevel < 90)
        SET @WrongOptions += N'ARITHABORT OFF, ';
    IF SESSIONPROPERTY('CONCAT_NULL_YIELDS_NULL') <> 1
        SET @WrongOptions += N'CONCAT_NULL_YIELDS_NULL OFF, ';
    IF SESSIONPROPERTY('QUOTED_IDENTIFIER') <> 1
        SET @WrongOptions += N'QUOTED_IDENTIFIER OFF, ';
    IF SESSIONPROPERTY('NUMERIC_ROUNDABORT') <> 0
        SET @WrongOptions += N'NUMERIC_ROUNDABORT ON, ';
    INSERT INTO @Lines (Status, CheckName, Detail)
    SELECT
        CASE WHEN @WrongOptions = N'' THEN 'ok' ELSE 'FAILED' END,
        'SetOptions',
        CASE
            WHEN @WrongOptions = N'' THEN N'the session has the options filtered indexes need'
            ELSE CONCAT(
                N'this session has ', LEFT(@WrongOptions, LEN(@WrongOptions) - 1),
                N': DML on tables with filtered indexes fails; use the ODBC driver''s defaults'
            )
        END;

    -- ProcedureSetOptions (every module in the FLP schemas)
    SELECT @WrongModules = LEFT(STRING_AGG(CAST(CONCAT(OBJECT_SCHEMA_NAME(m.object_id), N'.', OBJECT_NAME(m.object_id)) AS nvarchar(MAX)), N', '), 500)
    FROM sys.sql_modules AS m
    WHERE
        OBJECT_SCHEMA_NAME(m.object_id) IN (N'Job', N'Api', N'Upload', N'Monitor')
        AND (m.uses_ansi_nulls = 0 OR m.uses_quoted_identifier = 0);
    INSERT INTO @Lines (Status, CheckName, Detail)
    SELECT
        CASE WHEN @WrongModules IS NULL THEN 'ok' ELSE 'FAILED' END,
        'ProcedureSetOptions',
        CASE
            WHEN @WrongModules IS NULL THEN N'every FLP module was created with ANSI_NULLS and QUOTED_IDENTIFIER ON'
            ELSE CONCAT(N'created with ANSI_NULLS or QUOTED_IDENTIFIER OFF: ', @WrongModules, N'; apply the script again with sqlcmd -I')
        END;

    -- ReadCommittedSnapshot (both settings work: reported, never failed)
    INSERT INTO @Lines (Status, CheckName, Detail)
    SELECT
        'info',
        'ReadCommittedSnapshot',
        CASE WHEN @Rcsi = 1 THEN N'READ_COMMITTED_SNAPSHOT is ON' ELSE N'READ_COMMITTED_SNAPSHOT is OFF' END;

    -- DatabaseOwner
    SET @OwnerLogin = SUSER_SNAME(@OwnerSid);
    SELECT @DboSid = p.sid
    FROM sys.database_principals AS p
    WHERE p.name = N'dbo';
    INSERT INTO @Lines (Status, CheckName, Detail)
    SELECT
        CASE WHEN @OwnerLogin IS NOT NULL AND @DboSid = @OwnerSid THEN 'ok' ELSE 'FAILED' END,
        'DatabaseOwner',
        CASE
            WHEN @OwnerLogin IS NOT NULL AND @DboSid = @OwnerSid THEN CONCAT(N'owned by login ', QUOTENAME(@OwnerLogin))
            ELSE CONCAT(
                N'the owner of ', QUOTENAME(DB_NAME()), N' has no login on this server or is not the dbo user',
                N' (EXECUTE AS OWNER fails with 15517/15404): ALTER AUTHORIZATION ON DATABASE::',
                QUOTENAME(DB_NAME()), N' TO <a login, e.g. sa>'
            )
        END;

    ----------------------------------------------------------------------------
    -- Log end: the report, one line per check in order, and the failed ones
    ----------------------------------------------------------------------------
    SET @Failed = 0;
    SET @Report = N'';
    SET @Message = N'';
    SELECT @LineCount = MAX(l.LineNumber)
    FROM @Lines AS l;
    WHILE @LineNumber <= @LineCount
    BEGIN
        SELECT
            @Report = CONCAT(@Report, CASE WHEN @LineNumber > 1 THEN @NewLine END, l.Status, ' ', l.CheckName, N': ', l.Detail),
            @Failed += CASE WHEN l.Status = 'FAILED' THEN 1 ELSE 0 END,
            @Message = CONCAT(
                @Message,
                CASE WHEN l.Status = 'FAILED' THEN CONCAT(CASE WHEN @Message <> N'' THEN N' | ' END, l.CheckName, N': ', l.Detail) END
            )
        FROM @Lines AS l
        WHERE l.LineNumber = @LineNumber;
        SET @LineNumber += 1;
    END;

    IF @Failed > 0 AND @RaiseOnFailure = 'Y'
    BEGIN
        SET @Message = LEFT(CONCAT(N'Job.startup_check: ', @Failed, N' check(s) failed: ', @Message), 2048);
        THROW 50002, @Message, 1;
    END;
END;
