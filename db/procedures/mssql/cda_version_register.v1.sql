-- Api.cda_version_register, version 1.
-- The document version of a care plan for the content the service just read
-- (orchestrator/cda/versions.py: SHA-256 hex of the plan's clinical content).
-- When the newest PLSP.CdaDocumentVersion row has the same hash, that version
-- is returned (@Created 'N'): same data, same version. Otherwise the next
-- version is made (@Created 'Y') with a new document id, and
-- PLSP.Forloebsplan.VersionNumber follows it; @PreviousDocumentId names the
-- version it replaces (relatedDocument RPLC), NULL for the first. The first
-- version takes the plan's VersionNumber as it stands (versions the system we
-- replace issued are not counted twice). The plan row is locked for the
-- decision, so two requests at once make one version.
-- Differences from the PostgreSQL twin, one line each:
--   * The row is read WITH (UPDLOCK, HOLDLOCK) in a transaction; the twin: SELECT ... FOR UPDATE.
CREATE OR ALTER PROCEDURE Api.cda_version_register
    @ForloebsplanId bigint,
    @ContentHash char(64),
    @NowUtc datetime2(3) = NULL,
    @VersionNumber int = NULL OUTPUT,
    @DocumentId uniqueidentifier = NULL OUTPUT,
    @CreatedUtc datetime2(3) = NULL OUTPUT,
    @PreviousDocumentId uniqueidentifier = NULL OUTPUT,
    @Created char(1) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET LOCK_TIMEOUT 5000;  -- a plan's lock is held for milliseconds; never wait long

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = COALESCE(@NowUtc, SYSUTCDATETIME());
    DECLARE @PlanVersion int;
    DECLARE @LastVersion int;
    DECLARE @LastHash char(64);
    DECLARE @LastDocumentId uniqueidentifier;
    DECLARE @LastCreatedUtc datetime2(3);

    ----------------------------------------------------------------------------
    -- Check requirements: none.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @ForloebsplanId IS NULL OR @ForloebsplanId < 1
        SET @Errors += N'The value for the parameter @ForloebsplanId is not supported: give a care plan''s id (1 or more). ';
    IF @ContentHash IS NULL OR LEN(@ContentHash) <> 64 OR @ContentHash COLLATE Latin1_General_BIN2 LIKE '%[^0-9a-f]%'
        SET @Errors += N'The value for the parameter @ContentHash is not supported: give a SHA-256 as 64 lower-case hex digits. ';
    IF @NowUtc IS NOT NULL AND (@NowUtc < '2000-01-01' OR @NowUtc >= '2100-01-01')
        SET @Errors += N'The value for the parameter @NowUtc is not supported: give a UTC time from 2000 to 2099, or NULL for now. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    BEGIN TRANSACTION;

    ----------------------------------------------------------------------------
    -- Lock the plan, read its newest version
    ----------------------------------------------------------------------------
    SELECT @PlanVersion = f.VersionNumber
    FROM PLSP.Forloebsplan AS f WITH (UPDLOCK, HOLDLOCK)
    WHERE f.ForloebsplanId = @ForloebsplanId;
    IF @PlanVersion IS NULL
    BEGIN
        ROLLBACK TRANSACTION;
        THROW 50001, N'The value for the parameter @ForloebsplanId is not supported: no care plan has this id. ', 1;
    END;

    SELECT TOP (1)
        @LastVersion = dv.VersionNumber,
        @LastHash = dv.ContentHash,
        @LastDocumentId = dv.DocumentId,
        @LastCreatedUtc = dv.CreatedUtc
    FROM PLSP.CdaDocumentVersion AS dv
    WHERE dv.ForloebsplanId = @ForloebsplanId
    ORDER BY dv.VersionNumber DESC;

    ----------------------------------------------------------------------------
    -- Same content: the same version
    ----------------------------------------------------------------------------
    IF @LastHash = @ContentHash
    BEGIN
        SET @VersionNumber = @LastVersion;
        SET @DocumentId = @LastDocumentId;
        SET @CreatedUtc = @LastCreatedUtc;
        SELECT @PreviousDocumentId = dv.DocumentId
        FROM PLSP.CdaDocumentVersion AS dv
        WHERE dv.ForloebsplanId = @ForloebsplanId AND dv.VersionNumber = @LastVersion - 1;
        SET @Created = 'N';
        COMMIT TRANSACTION;
        RETURN;
    END;

    ----------------------------------------------------------------------------
    -- Changed content (or none yet): the next version
    ----------------------------------------------------------------------------
    SET @VersionNumber = CASE WHEN @LastVersion IS NULL THEN @PlanVersion ELSE @LastVersion + 1 END;
    SET @DocumentId = NEWID();
    SET @CreatedUtc = @Now;
    SET @PreviousDocumentId = @LastDocumentId;
    INSERT INTO PLSP.CdaDocumentVersion (ForloebsplanId, VersionNumber, DocumentId, ContentHash, CreatedUtc)
    VALUES (@ForloebsplanId, @VersionNumber, @DocumentId, @ContentHash, @CreatedUtc);
    UPDATE PLSP.Forloebsplan SET VersionNumber = @VersionNumber
    WHERE ForloebsplanId = @ForloebsplanId AND VersionNumber <> @VersionNumber;
    SET @Created = 'Y';

    COMMIT TRANSACTION;
END;
