-- Job.aim_mark_delivered, version 1.
-- Marks delivered (Status 2, DeliveredUtc now) the FLP_AIM rows of @Ids (a
-- JSON array of ids) once MongoDB holds their documents; the nightly archive
-- may then move them. Idempotent: rows delivered already are left as they
-- are, so a redelivered message marks nothing twice. @Rows counts the rows
-- marked by this call.
CREATE OR ALTER PROCEDURE Job.aim_mark_delivered
    @Ids varchar(MAX),
    @Rows int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Elements int;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @Ids IS NULL OR ISJSON(@Ids) <> 1 OR LTRIM(@Ids) NOT LIKE '[[]%'
        SET @Errors += N'The value for the parameter @Ids is not supported: give a JSON array of FLP_AIM ids. ';
    ELSE
    BEGIN
        SELECT @Elements = COUNT(*) FROM OPENJSON(@Ids);
        IF @Elements NOT BETWEEN 1 AND 4999
            SET @Errors += N'The value for the parameter @Ids is not supported: give 1 to 4999 ids (lock escalation starts at 5000). ';
        ELSE IF EXISTS (
            SELECT 1 FROM OPENJSON(@Ids) AS e
            WHERE e.type <> 2 OR e.value COLLATE Latin1_General_BIN2 LIKE '%[^0-9]%' OR LEN(e.value) > 18 OR e.value LIKE '0%'
        )
            SET @Errors += N'The value for the parameter @Ids is not supported: every id must be a positive whole number. ';
    END;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work (nothing is logged per message)
    ----------------------------------------------------------------------------
    UPDATE a
    SET a.Status = 2,
        a.DeliveredUtc = SYSUTCDATETIME()
    FROM PLSP.FLP_AIM AS a WITH (ROWLOCK)
    INNER JOIN OPENJSON(@Ids) WITH (Id bigint '$') AS j ON a.Id = j.Id
    WHERE a.Status IN (0, 1);
    SET @Rows = @@ROWCOUNT;
END;
