-- Api.cda_access_log, version 1.
-- One row of PLSP.CdaAccessLog per request for a care-plan document or its
-- values (the service writes it after answering): who asked (citizen, or the
-- DDS organisation), why, the patient as a keyed hash (never a CPR number),
-- the care plan and document version served, the HTTP status and the latency.
-- Twin differences: none beyond the dialects.
CREATE OR ALTER PROCEDURE Api.cda_access_log
    @RequesterKind varchar(10),
    @Requester nvarchar(100),
    @Purpose varchar(40),
    @HttpStatus smallint,
    @LatencyMs int,
    @PatientHash char(64) = NULL,
    @ForloebCode varchar(10) = NULL,
    @VersionNumber int = NULL,
    @AccessedUtc datetime2(3) = NULL
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check requirements: none.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @RequesterKind IS NULL OR @RequesterKind NOT IN ('citizen', 'dds')
        SET @Errors += N'The value for the parameter @RequesterKind is not supported: use citizen or dds. ';
    IF @Requester IS NULL OR @Requester = N''
        SET @Errors += N'The value for the parameter @Requester is not supported: name the requester (up to 100 characters). ';
    IF @Purpose IS NULL OR @Purpose = '' OR @Purpose COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9-]%'
        OR LEFT(@Purpose, 1) COLLATE Latin1_General_BIN2 NOT LIKE '[a-z]'
        SET @Errors += N'The value for the parameter @Purpose is not supported: give a purpose word (lower-case letters, digits, -). ';
    IF @HttpStatus IS NULL OR @HttpStatus < 100 OR @HttpStatus > 599
        SET @Errors += N'The value for the parameter @HttpStatus is not supported: give an HTTP status from 100 to 599. ';
    IF @LatencyMs IS NULL OR @LatencyMs < 0
        SET @Errors += N'The value for the parameter @LatencyMs is not supported: give whole milliseconds, 0 or more. ';
    IF @PatientHash IS NOT NULL AND (LEN(@PatientHash) <> 64 OR @PatientHash COLLATE Latin1_General_BIN2 LIKE '%[^0-9a-f]%')
        SET @Errors += N'The value for the parameter @PatientHash is not supported: give the keyed hash as 64 lower-case hex digits, or NULL. ';
    IF @ForloebCode IS NOT NULL AND (@ForloebCode = '' OR @ForloebCode COLLATE Latin1_General_BIN2 LIKE '%[^A-Z0-9]%')
        SET @Errors += N'The value for the parameter @ForloebCode is not supported: give a care-plan code such as ALAL22, or NULL. ';
    IF @VersionNumber IS NOT NULL AND @VersionNumber < 1
        SET @Errors += N'The value for the parameter @VersionNumber is not supported: give 1 or more, or NULL. ';
    IF @AccessedUtc IS NOT NULL AND (@AccessedUtc < '2000-01-01' OR @AccessedUtc >= '2100-01-01')
        SET @Errors += N'The value for the parameter @AccessedUtc is not supported: give a UTC time from 2000 to 2099, or NULL for now. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Log
    ----------------------------------------------------------------------------
    INSERT INTO PLSP.CdaAccessLog (
        AccessedUtc, RequesterKind, Requester, Purpose, PatientHash, ForloebCode, VersionNumber, HttpStatus, LatencyMs
    )
    VALUES (
        COALESCE(@AccessedUtc, SYSUTCDATETIME()),
        @RequesterKind, @Requester, @Purpose, @PatientHash, @ForloebCode, @VersionNumber, @HttpStatus, @LatencyMs
    );
END;
