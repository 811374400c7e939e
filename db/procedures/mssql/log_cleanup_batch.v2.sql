-- Job.log_cleanup_batch, version 2.
-- One step of the log clean-up: the batch procedure Job.run_batched calls for
-- job log_cleanup. It checks, in the caller's context, what would make the
-- step fail in a way nobody can act on, then hands the step to
-- Job.log_cleanup_batch_as_owner, which does the work WITH EXECUTE AS OWNER
-- (docs/jobs/log_cleanup.md has the steps: months ahead, old months,
-- stragglers).
--
-- The database owner must be a login on this server. EXECUTE AS OWNER
-- impersonates dbo, the user of the database owner's login; after a restore to
-- another server, on an availability-group replica where that login is
-- missing, or when the owner's Windows account was removed, the impersonation
-- fails (15517 "Cannot execute as the database principal", 15404 "Could not
-- obtain information about Windows NT group/user") before a single statement of
-- the module runs, every night. So this procedure, which has no EXECUTE AS,
-- checks SUSER_SNAME(owner_sid) first and, should the owner still fail,
-- turns 15517 / 15404 into the same message: what to set (ALTER AUTHORIZATION
-- ON DATABASE::... TO [a login]).
--
-- Version 2 (issue 7): version 1's body moved to Job.log_cleanup_batch_as_owner
-- (one month boundary set created per step, SWITCH without queueing for at most
-- LockWaitMs, switch-target check, exact row counts, straggler keyset); SET
-- IMPLICIT_TRANSACTIONS OFF and DEADLOCK_PRIORITY LOW on entry.
-- Differences from the PostgreSQL twin, one line each:
--   * The owner check (the twin's SECURITY DEFINER runs as the routine's owner role, which always exists).
--   * A char(1) parameter is cut to its length before the body runs ('YES' is 'Y'); the twin refuses 'YES' naming the parameter.
CREATE OR ALTER PROCEDURE Job.log_cleanup_batch
    @BatchSize int,
    @Execute char(1),
    @Position bigint = NULL OUTPUT,
    @Rows int = NULL OUTPUT,
    @Done bit = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @OwnerProblem nvarchar(2048);
    DECLARE @OwnerSid varbinary(85);
    DECLARE @OwnerLogin sysname;

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.log_cleanup_batch must not run inside a transaction: it commits its own short transactions. ';

    -- The current database's row of sys.databases is visible to every user.
    SELECT @OwnerSid = d.owner_sid, @OwnerLogin = SUSER_SNAME(d.owner_sid)
    FROM sys.databases AS d
    WHERE d.database_id = DB_ID();
    SET @OwnerProblem = CONCAT(
        N'The owner of database ', QUOTENAME(DB_NAME()), N' (SID ', CONVERT(nvarchar(200), @OwnerSid, 1),
        N') is no usable login on this server, so Job.log_cleanup_batch_as_owner (WITH EXECUTE AS OWNER) cannot run ',
        N'(error 15517 / 15404). Make a login of this server the owner: ALTER AUTHORIZATION ON DATABASE::',
        QUOTENAME(DB_NAME()), N' TO [a login that exists here, e.g. sa]; (docs/jobs/log_cleanup.md, "Database owner"). '
    );
    IF @OwnerLogin IS NULL
        SET @Errors += @OwnerProblem;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (remove) or N (count only). ';
    IF @Position < -315537897600001
        SET @Errors += N'The value for the parameter @Position is not supported: give NULL, a step position from an earlier call, or -1. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work: the step, as the owner
    ----------------------------------------------------------------------------
    BEGIN TRY
        EXEC Job.log_cleanup_batch_as_owner
            @BatchSize = @BatchSize,
            @Execute = @Execute,
            @Position = @Position OUTPUT,
            @Rows = @Rows OUTPUT,
            @Done = @Done OUTPUT,
            @Note = @Note OUTPUT;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        IF ERROR_NUMBER() IN (15517, 15404)  -- the owner cannot be impersonated
        BEGIN
            SET @OwnerProblem = LEFT(CONCAT(@OwnerProblem, N'SQL Server said: ', ERROR_MESSAGE()), 2048);
            THROW 50002, @OwnerProblem, 1;
        END;
        THROW;
    END CATCH;
END;
