-- Job.health_check, version 1.
-- Tells a batched job whether the database is busy: more other active requests
-- than @MaxActive, or more blocked requests than @MaxLockWaits. Needs VIEW
-- SERVER STATE for the caller (or a certificate-signed copy of this procedure):
-- without it the DMVs show only the caller's own session and the gate could
-- never close, so it refuses to answer instead. docs/operations.md says how to
-- grant it.
CREATE OR ALTER PROCEDURE Job.health_check
    @MaxActive int,
    @MaxLockWaits int,
    @Busy bit = NULL OUTPUT,
    @Reason nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Active int;
    DECLARE @LockWaits int;

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') = 0
        SET @Errors += N'Job.health_check needs VIEW SERVER STATE for the caller, or the health gate could never close. ';

    ----------------------------------------------------------------------------
    -- Check parameters (a NULL limit would silently open the gate)
    ----------------------------------------------------------------------------
    IF @MaxActive IS NULL OR @MaxActive < 0
        SET @Errors += N'The value for the parameter @MaxActive is not supported: give 0 or more sessions. ';
    IF @MaxLockWaits IS NULL OR @MaxLockWaits < 0
        SET @Errors += N'The value for the parameter @MaxLockWaits is not supported: give 0 or more sessions. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Look
    ----------------------------------------------------------------------------

    SELECT
        @Active = COUNT(CASE WHEN r.session_id <> @@SPID THEN 1 END),
        @LockWaits = COUNT(CASE WHEN r.blocking_session_id <> 0 THEN 1 END)
    FROM sys.dm_exec_requests AS r
    INNER JOIN sys.dm_exec_sessions AS s ON r.session_id = s.session_id
    WHERE s.is_user_process = 1;

    SET @Busy = CASE WHEN @Active > @MaxActive OR @LockWaits > @MaxLockWaits THEN 1 ELSE 0 END;
    SET @Reason = CONCAT(
        N'active requests ', @Active, N' (limit ', @MaxActive, N'), ',
        N'blocked requests ', @LockWaits, N' (limit ', @MaxLockWaits, N')'
    );
END;
