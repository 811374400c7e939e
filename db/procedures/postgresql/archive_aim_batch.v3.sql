-- Job.archive_aim_batch, version 3.
-- One batch of the Archive AIM job (the batch contract of Job.run_batched):
-- moves the next p_BatchSize rows that may go from PLSP.FLP_AIM to
-- PLSP.FLP_AIM_History, walking the primary key Id upward from p_Position.
-- A row may go when it was delivered (Status = 2) longer ago than the job's
-- RetentionDays setting; nothing else ever moves.
--
-- The move is one statement in the batch's one transaction: the rows leave the
-- hot table and enter the history together, or not at all. A row is in exactly
-- one of the two tables at every moment, and a batch retried after a crash
-- finds each row where it was (the history's primary key would refuse a second
-- copy). The DELETE checks the predicate again on every row it locks, so a row
-- another session changed since the range was read moves only if it still may
-- go, as it is then. A row another session holds locked is left for the next
-- run: the batch waits for it at most lock_timeout, then moves the rest of its
-- range with FOR UPDATE SKIP LOCKED.
-- p_Execute = 'N' only counts the rows the batch would move; it writes nothing
-- and takes no row locks.
--
-- Version 2 (issue 7):
--   * The pick is an index scan on the partial index IX_FLP_AIM_Delivered
--     (WHERE Status = 2, migration 0005), not a primary-key scan filtering
--     Status: pending and queued rows are never read.
--   * Lock waits are bounded by the engine's LockTimeoutMs (Job.run_batched
--     sets lock_timeout before the batch) instead of a fixed 100 ms; called on
--     its own with no lock_timeout at all it sets 1000 ms for the transaction.
--   * p_BatchSize at most 4000 (SQL Server's lock escalation: see the twin).
--
-- Version 3 (migration 0014): the move commits without waiting for its WAL to
-- reach the disk (synchronous_commit off, for the batch's transaction only).
-- A batch then holds its row locks for the work, not for a WAL flush that on a
-- busy machine took up to 440 ms (bench/bench_archive.py: the probe stalled on
-- the same flush). Safe for this move: a crash can undo only the last batches
-- committed (a fraction of a second), whole; their rows are then in the hot
-- table again, never in both tables or in neither, and the next run moves them.
-- The progress rows and the run row keep their ordinary durable commits.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine:
--   * No transaction control: Job.run_batched commits after the call.
--   * DELETE has no READPAST. Locking every row first (FOR UPDATE SKIP LOCKED)
--     would skip locked rows but doubles the batch's cost (a lock record per
--     row; bench/bench_archive.py measured 25 ms against 13 ms per 4,999 rows),
--     so it is only the fallback when a row of the range is locked; that is
--     rare: the AIM fetcher writes queued rows, which are not in the range.
--   * synchronous_commit off for the move (version 3); the T-SQL twin commits durably: delayed durability needs the database option ALLOW_DELAYED_DURABILITY, a DBA's choice, and SQL Server's log is on its own storage.
--   * No IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY (T-SQL settings); a
--     deadlock victim here is retried by Job.run_batched (40P01) as there (1205).
--   * A char(1) parameter is not cut to its length on PostgreSQL: 'YES' for
--     p_Execute is refused naming it (SQL Server cuts it to 'Y' before the body).
CREATE PROCEDURE Job.archive_aim_batch(
    p_BatchSize integer,
    p_Execute char(1),
    INOUT p_Position bigint DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Done boolean DEFAULT NULL,
    INOUT p_Note varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_RetentionText varchar(400);
    v_RetentionDays integer;
    v_CutoffUtc timestamp(3);
    v_FromId bigint := coalesce(p_Position, 0);
    v_ToId bigint;
    v_Picked integer;
BEGIN
    -- PostgreSQL has no READPAST, IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY: nothing to set.
    -- Bounded lock waits: the engine's lock_timeout, or 1 s when called on its own without one.
    IF current_setting('lock_timeout') = '0' THEN
        PERFORM set_config('lock_timeout', '1000ms', true);
    END IF;

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; this procedure has no transaction
    -- control (the runner, Job.run_batched, commits after the call).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_BatchSize IS NULL OR p_BatchSize < 1 OR p_BatchSize > 4000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (move) or N (count only). ';
    END IF;
    IF p_Position < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give the last Id handled, or NULL at the start. ';
    END IF;

    -- The job's own setting: whole days a delivered row stays in the hot table.
    SELECT s.Value INTO v_RetentionText
    FROM Ops.Setting AS s
    WHERE s.JobName IN ('archive_aim', '*') AND s.Name = 'RetentionDays'
    ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END
    LIMIT 1;
    IF v_RetentionText ~ '^[0-9]{1,5}$' THEN
        v_RetentionDays := v_RetentionText::integer;
    END IF;
    IF v_RetentionDays IS NULL OR v_RetentionDays > 36500 THEN
        v_Errors := v_Errors || 'Setting RetentionDays (Ops.Setting, job archive_aim) is missing or not a whole number of days from 0 to 36500. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    v_CutoffUtc := (clock_timestamp() AT TIME ZONE 'UTC') - make_interval(days => v_RetentionDays);

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    -- The keyset range of this batch: the next p_BatchSize rows that may go.
    -- Status = 2 is written as a literal so the partial index IX_FLP_AIM_Delivered
    -- (WHERE Status = 2) serves the pick in every plan, generic or custom.
    SELECT count(*), max(k.Id) INTO v_Picked, v_ToId
    FROM (
        SELECT a.Id
        FROM PLSP.FLP_AIM AS a
        WHERE a.Id > v_FromId AND a.Status = 2 AND a.DeliveredUtc < v_CutoffUtc
        ORDER BY a.Id
        LIMIT p_BatchSize
    ) AS k;

    IF p_Execute = 'N' OR v_Picked = 0 THEN
        p_Rows := v_Picked;
    ELSE
        -- This transaction only: its commit does not wait for the WAL flush.
        PERFORM set_config('synchronous_commit', 'off', true);
        BEGIN
            -- Move the range in one statement. DELETE checks the predicate again
            -- on each row it locks; a row locked by another session is waited
            -- for at most lock_timeout.
            WITH moved AS (
                DELETE FROM PLSP.FLP_AIM AS a
                WHERE a.Id > v_FromId AND a.Id <= v_ToId AND a.Status = 2 AND a.DeliveredUtc < v_CutoffUtc
                RETURNING a.Id, a.ForloebsplanId, a.Status, a.CreatedUtc, a.QueuedUtc, a.DeliveredUtc
            )

            INSERT INTO PLSP.FLP_AIM_History (Id, ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc, ArchivedUtc)
            SELECT m.Id, m.ForloebsplanId, m.Status, m.CreatedUtc, m.QueuedUtc, m.DeliveredUtc, clock_timestamp() AT TIME ZONE 'UTC'
            FROM moved AS m;
            GET DIAGNOSTICS p_Rows = ROW_COUNT;
        EXCEPTION WHEN lock_not_available THEN
            -- Another session holds a row of the range: move the others and
            -- leave that one for the next run (the block's work was undone).
            WITH moved AS (
                DELETE FROM PLSP.FLP_AIM AS a
                WHERE a.Id IN (
                    SELECT l.Id
                    FROM PLSP.FLP_AIM AS l
                    WHERE l.Id > v_FromId AND l.Id <= v_ToId AND l.Status = 2 AND l.DeliveredUtc < v_CutoffUtc
                    FOR UPDATE SKIP LOCKED
                )
                AND a.Status = 2 AND a.DeliveredUtc < v_CutoffUtc  -- checked again on the locked row
                RETURNING a.Id, a.ForloebsplanId, a.Status, a.CreatedUtc, a.QueuedUtc, a.DeliveredUtc
            )

            INSERT INTO PLSP.FLP_AIM_History (Id, ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc, ArchivedUtc)
            SELECT m.Id, m.ForloebsplanId, m.Status, m.CreatedUtc, m.QueuedUtc, m.DeliveredUtc, clock_timestamp() AT TIME ZONE 'UTC'
            FROM moved AS m;
            GET DIAGNOSTICS p_Rows = ROW_COUNT;
        END;
    END IF;

    ----------------------------------------------------------------------------
    -- Report: where the next batch starts, and whether the keyset is exhausted
    ----------------------------------------------------------------------------
    p_Position := coalesce(v_ToId, p_Position);
    p_Done := v_Picked < p_BatchSize;
    p_Note := left(CASE
        WHEN v_Picked = 0 THEN concat('no rows to move after Id ', v_FromId)
        ELSE concat(
            'Id ', v_FromId + 1, '..', v_ToId, ': ',
            CASE WHEN p_Execute = 'Y' THEN 'moved ' ELSE 'would move ' END, p_Rows,
            CASE WHEN p_Rows < v_Picked THEN concat(' of ', v_Picked, ' (the rest locked or changed meanwhile: left for the next run)') END
        )
    END, 400);
END;
$$;
