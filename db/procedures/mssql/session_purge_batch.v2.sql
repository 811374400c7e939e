-- Job.session_purge_batch, version 2.
-- One batch of the session purge (Job.session_purge runs it through
-- Job.run_batched): deletes up to @BatchSize sessions whose ExpiresUtc has
-- passed, oldest expiry first, skipping rows another session has locked (a
-- login extending its session is never waited for; the next run takes it).
--
-- "Now" is read at the start of the batch, cut to milliseconds like the column:
-- a session expiring at that instant or later stays.
--
-- PLSP.Session is clustered on (ExpiresUtc, SessionId), so a batch is a range
-- at the start of the table while new sessions arrive at its end. The delete
-- goes through a TOP ... ORDER BY keyset CTE rather than a bare DELETE TOP: TOP
-- without ORDER BY may take any qualifying rows, and @Position (the largest
-- ExpiresUtc deleted) is only a safe place to resume from when the rows went in
-- key order. Row locks and READPAST: never more than @BatchSize (< 5,000) locks,
-- so no escalation to a table lock, and locked rows are skipped, not waited for.
--
-- @Position is the keyset: the last ExpiresUtc handled, as milliseconds since
-- 1970-01-01 UTC (NULL at the start).
--   * Execute: from ExpiresUtc >= position (rows sharing the last millisecond
--     may remain after a full batch); the next position is the largest
--     ExpiresUtc deleted. Done when fewer than @BatchSize rows were deleted.
--   * Dry run: counts @BatchSize rows from ExpiresUtc > position, plus the rows
--     sharing the last millisecond counted (so each row is counted once, and a
--     dry batch may report a few rows more than @BatchSize); writes nothing
--     and, with READPAST, never waits on a locked row either.
--
-- Version 2 (issue 7):
--   * READPAST always with a locking hint (UPDLOCK for the delete's rows,
--     READCOMMITTEDLOCK for the dry run's reads): on a database with
--     READ_COMMITTED_SNAPSHOT ON a READPAST read under READ COMMITTED raises
--     error 650 (it would read row versions, which cannot skip locks).
--   * SET IMPLICIT_TRANSACTIONS OFF on entry (a caller with it ON would make
--     the first read open a transaction) and DEADLOCK_PRIORITY LOW: the purge
--     and a login extending its session take PK_Session and IX_Session_Expires
--     in opposite orders, and the purge must be the victim (Job.run_batched
--     retries a batch on 1205). Both revert when the procedure returns.
--   * Bounded lock waits: the caller's LOCK_TIMEOUT (Job.run_batched sets the
--     LockTimeoutMs setting); when called on its own with none (-1), 1000 ms.
--   * @BatchSize at most 4000: a deleted row locks a key in both indexes, and
--     SQL Server escalates at 5,000 locks on one index (checked every 1,250).
--
-- Differences from the PostgreSQL twin, one line each:
--   * READPAST skips locked rows; the twin: FOR UPDATE SKIP LOCKED.
--   * Its own short transaction; the twin has no transaction control in the batch (Job.run_batched commits).
--   * A char(1) parameter is cut to its length before the body runs ('YES' is 'Y'); the twin refuses 'YES' naming the parameter.
CREATE OR ALTER PROCEDURE Job.session_purge_batch
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
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs READ COMMITTED (error 650 otherwise); reverts on return
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 1000;  -- called on its own: never wait forever; reverts on return

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Clock datetime2(7) = SYSUTCDATETIME();
    DECLARE @Now datetime2(3);
    DECLARE @From datetime2(3);
    DECLARE @Last datetime2(3);
    DECLARE @Found int;
    DECLARE @Deleted TABLE (ExpiresUtc datetime2(3) NOT NULL);

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.session_purge_batch must not run inside a transaction: it commits its own short transactions. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (delete) or N (count only). ';
    IF @Position < 0
        SET @Errors += N'The value for the parameter @Position is not supported: give NULL or milliseconds since 1970-01-01 UTC. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    -- Cut to the millisecond (a plain CAST would round, possibly up).
    SET @Now = CAST(DATEADD(NANOSECOND, -(DATEPART(NANOSECOND, @Clock) % 1000000), @Clock) AS datetime2(3));
    -- DATEADD takes an int: add whole days, then the remaining milliseconds.
    SET @From = CASE
        WHEN @Position IS NULL THEN CAST('0001-01-01' AS datetime2(3))
        ELSE DATEADD(
            MILLISECOND, CAST(@Position % 86400000 AS int),
            DATEADD(DAY, CAST(@Position / 86400000 AS int), CAST('1970-01-01' AS datetime2(3)))
        )
    END;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    IF @Execute = 'Y'
    BEGIN
        BEGIN TRY
            BEGIN TRANSACTION;

            WITH batch AS (
                SELECT TOP (@BatchSize) s.ExpiresUtc
                -- READPAST needs a locking read: UPDLOCK (RCSI databases raise error 650 otherwise).
                FROM PLSP.Session AS s WITH (ROWLOCK, UPDLOCK, READPAST)
                WHERE s.ExpiresUtc >= @From AND s.ExpiresUtc < @Now
                ORDER BY s.ExpiresUtc, s.SessionId
            )

            DELETE FROM batch
            OUTPUT deleted.ExpiresUtc INTO @Deleted (ExpiresUtc);

            COMMIT TRANSACTION;
        END TRY
        BEGIN CATCH
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;
            THROW;
        END CATCH;

        SELECT @Rows = COUNT(*), @Last = MAX(d.ExpiresUtc)
        FROM @Deleted AS d;

        SET @Done = CASE WHEN @Rows < @BatchSize THEN 1 ELSE 0 END;
    END
    ELSE
    BEGIN
        -- READPAST here too: the probe (Job.run_batched's first call, a dry
        -- run) never waits on a login's locked row.
        SELECT @Found = COUNT(*), @Last = MAX(c.ExpiresUtc)
        FROM (
            SELECT TOP (@BatchSize) s.ExpiresUtc
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.Session AS s WITH (READCOMMITTEDLOCK, READPAST)
            WHERE s.ExpiresUtc > @From AND s.ExpiresUtc < @Now
            ORDER BY s.ExpiresUtc
        ) AS c;

        SET @Rows = @Found;
        IF @Found = @BatchSize
            -- Rows sharing the last millisecond are counted now, not next batch.
            SELECT @Rows = COUNT(*)
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.Session AS s WITH (READCOMMITTEDLOCK, READPAST)
            WHERE s.ExpiresUtc > @From AND s.ExpiresUtc <= @Last;
        SET @Done = CASE WHEN @Found < @BatchSize THEN 1 ELSE 0 END;
    END;

    SET @Position = CASE
        WHEN @Last IS NULL THEN @Position
        ELSE DATEDIFF_BIG(MILLISECOND, CAST('1970-01-01' AS datetime2(3)), @Last)
    END;
    SET @Note = CONCAT(
        CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END, @Rows,
        N' sessions expired before ', CONVERT(nvarchar(23), @Now, 126),
        N', last expiry ' + CONVERT(nvarchar(23), @Last, 126)
    );
END;
