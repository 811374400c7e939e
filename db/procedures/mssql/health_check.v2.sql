-- Job.health_check, version 2.
-- Tells a batched job whether the FLP database is busy: more other active
-- requests in this database than @MaxActive, or more requests of this database
-- waiting for a lock (LCK_M_% with a positive blocking session id) than
-- @MaxLockWaits. On a shared instance other databases' requests are not this
-- database's load. Left out as "not load": requests waiting in WAITFOR (FLP's
-- own jobs sleeping between batches among them), WAITFOR (RECEIVE ...) and
-- diagnostic or trace readers; blocking ids 0 and below (-2 orphaned
-- distributed transaction, -3 deferred recovery, -4 latch owner unknown) are
-- not lock waits.
--
-- Permissions. The DMVs show other sessions only with VIEW SERVER STATE, or on
-- SQL Server 2022 and later VIEW SERVER PERFORMANCE STATE (either is enough);
-- without one they show the caller's own session and the gate could never
-- close, so the procedure refuses to answer instead.
-- The default is module signing: the migration that creates this procedure
-- signs it (ADD SIGNATURE ... BY CERTIFICATE FlpHealthCheckSigner) right
-- after every CREATE OR ALTER, which drops a signature; the DBA makes a login
-- in master from that certificate once and grants it the permission
-- (docs/operations.md, "Before the first deploy"). The orchestrator's login
-- then never holds VIEW SERVER STATE, which would show it every database's
-- query text (CPR numbers in literals).
--
-- Differences from the PostgreSQL twin: the twin leaves out FLP's own job
-- sessions sleeping in pg_sleep by their application_name, and counts waits
-- for heavyweight locks; its header says so, one line each.
CREATE OR ALTER PROCEDURE Job.health_check
    @MaxActive int,
    @MaxLockWaits int,
    @Busy bit = NULL OUTPUT,
    @Reason nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Active int;
    DECLARE @LockWaits int;

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    -- HAS_PERMS_BY_NAME answers NULL for a permission the server does not know
    -- (VIEW SERVER PERFORMANCE STATE before 2022).
    IF COALESCE(HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE'), 0) = 0
        AND COALESCE(HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER PERFORMANCE STATE'), 0) = 0
        SET @Errors += N'Job.health_check needs VIEW SERVER STATE (or, 2022+, VIEW SERVER PERFORMANCE STATE) via its signature, or the gate never closes. ';

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
        @Active = COUNT(*),
        @LockWaits = COUNT(CASE WHEN r.wait_type LIKE N'LCK[_]M[_]%' AND r.blocking_session_id > 0 THEN 1 END)
    FROM sys.dm_exec_requests AS r
    INNER JOIN sys.dm_exec_sessions AS s ON r.session_id = s.session_id
    WHERE s.is_user_process = 1
        AND r.database_id = DB_ID()
        AND r.session_id <> @@SPID
        AND (
            r.wait_type IS NULL
            OR r.wait_type NOT IN (
                N'WAITFOR', N'BROKER_RECEIVE_WAITFOR', N'BROKER_TASK_STOP', N'SP_SERVER_DIAGNOSTICS_SLEEP',
                N'XE_LIVE_TARGET_TVF', N'SQLTRACE_WAIT_ENTRIES', N'TRACEWRITE'
            )
        );

    SET @Busy = CASE WHEN @Active > @MaxActive OR @LockWaits > @MaxLockWaits THEN 1 ELSE 0 END;
    SET @Reason = CONCAT(
        N'active requests ', @Active, N' (limit ', @MaxActive, N'), ',
        N'blocked requests ', @LockWaits, N' (limit ', @MaxLockWaits, N')'
    );
END;
