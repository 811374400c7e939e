-- Job.log_cleanup_batch, version 1.
-- One step of the log clean-up (Job.log_cleanup runs it through
-- Job.run_batched). PLSP.Log keeps the current UTC month and the RetentionMonths
-- before it; everything logged before that cutoff goes, a whole month at a time,
-- so the cost does not grow with the rows removed. The steps, in order:
--   1. ensure   (p_Position NULL): Job.log_partitions_ensure creates the month
--               partitions missing for now .. PartitionMonthsAhead; one row of
--               work per partition created. Nothing to create: straight on to 2.
--   2. months   (p_Position >= 0): the next month partition wholly before the
--               cutoff that holds rows is emptied with TRUNCATE. p_Position is
--               then its upper bound, as milliseconds since 1970-01-01 UTC.
--   3. default  (p_Position = -1): rows before the cutoff in PLSP.Log_Default
--               (months that had no partition) go p_BatchSize at a time.
-- Why TRUNCATE of the partition, not DETACH + DROP + CREATE: TRUNCATE locks only
-- that old partition, which writers never touch (they insert through PLSP.Log
-- into the current month, and an insert locks only the partition it lands in).
-- DETACH without CONCURRENTLY (CONCURRENTLY cannot run in a procedure) and
-- CREATE TABLE ... PARTITION OF take ACCESS EXCLUSIVE on PLSP.Log itself: every
-- writer would wait for them, and queue behind them while they wait.
-- The partition lock is asked for with NOWAIT, again every 10 ms for at most
-- LockWaitMs: a waiting request would make later users of that partition (a
-- reader of the whole log) queue behind it. Not granted in time: the month is
-- left for the next run, the batch note says so, and the run goes on.
-- Rows counted: the statistics' live-row count (pg_stat, O(1)) when it says
-- more than 10,000, else counted exactly (at most 10,001 rows read), so counting
-- never reads a big month. A dry run counts the same way and writes nothing (no
-- partitions created either).
-- Runs with the owner's rights; does not COMMIT (the runner does).
CREATE PROCEDURE Job.log_cleanup_batch(
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
SET lock_timeout = '1s'  -- scopes the set_config below to this procedure
AS $$
DECLARE
    v_Errors text := '';
    v_CountExactMax constant integer := 10000;  -- rows counted exactly per partition
    v_Now timestamp(3) := date_trunc('milliseconds', now() AT TIME ZONE 'UTC');
    v_RetentionMonths integer;
    v_LockWaitMs integer;
    v_PartitionMonthsAhead integer;
    v_Cutoff timestamp(3);
    v_From timestamp(3);
    v_Partition regclass;
    v_UpperBound timestamp(3);
    v_MoreMonths boolean := false;
    v_DefaultRows boolean;
    v_HasRows boolean;
    v_Counted bigint;
    v_Created integer;
    v_Locked boolean;
    v_Deadline timestamptz;
    r record;
BEGIN
    -- PostgreSQL has no READPAST, so nothing to set (the T-SQL twin sets READ COMMITTED here).

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; this procedure has no transaction
    -- control (the runner, Job.run_batched, commits after the call).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_BatchSize IS NULL OR p_BatchSize < 1 OR p_BatchSize > 4999 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 to 4999 rows (lock escalation starts at 5000). ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (remove) or N (count only). ';
    END IF;
    IF p_Position < -1 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give NULL, -1 or milliseconds since 1970-01-01 UTC. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Check settings (Ops.Setting, job log_cleanup; read before every step)
    ----------------------------------------------------------------------------
    SELECT
        max(CASE WHEN s.Name = 'RetentionMonths' AND s.Value ~ '^[0-9]{1,4}$' THEN s.Value::integer END),
        max(CASE WHEN s.Name = 'LockWaitMs' AND s.Value ~ '^[0-9]{1,9}$' THEN s.Value::integer END),
        max(CASE WHEN s.Name = 'PartitionMonthsAhead' AND s.Value ~ '^[0-9]{1,4}$' THEN s.Value::integer END)
    INTO v_RetentionMonths, v_LockWaitMs, v_PartitionMonthsAhead
    FROM Ops.Setting AS s
    WHERE s.JobName = 'log_cleanup';

    IF v_RetentionMonths IS NULL OR v_RetentionMonths > 1200 THEN
        v_Errors := v_Errors || 'Setting RetentionMonths (Ops.Setting, log_cleanup) must be a whole number from 0 to 1200. ';
    END IF;
    IF v_LockWaitMs IS NULL OR v_LockWaitMs > 60000 THEN
        v_Errors := v_Errors || 'Setting LockWaitMs (Ops.Setting, log_cleanup) must be a whole number from 0 to 60000. ';
    END IF;
    IF v_PartitionMonthsAhead IS NULL OR v_PartitionMonthsAhead > 120 THEN
        v_Errors := v_Errors || 'Setting PartitionMonthsAhead (Ops.Setting, log_cleanup) must be a whole number from 0 to 120. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    -- Rows logged before the cutoff go: the start of the current UTC month,
    -- RetentionMonths earlier.
    v_Cutoff := date_trunc('month', v_Now) - make_interval(months => v_RetentionMonths);
    v_From := TIMESTAMP '1970-01-01' + greatest(coalesce(p_Position, 0), 0) * INTERVAL '1 millisecond';
    -- A backstop for every lock taken here. A local setting lasts to the end of
    -- the transaction (the runner's), but the SET lock_timeout clause of this
    -- procedure restores the caller's value when this returns.
    PERFORM set_config('lock_timeout', greatest(v_LockWaitMs, 10) || 'ms', true);

    ----------------------------------------------------------------------------
    -- Survey: the next old month partition holding rows, whether another
    -- follows, and whether the default partition holds old rows.
    ----------------------------------------------------------------------------
    IF p_Position IS NULL OR p_Position >= 0 THEN
        FOR r IN
            SELECT b.Part, b.UpperBound
            FROM (
                SELECT
                    i.inhrelid::regclass AS Part,
                    substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamp AS UpperBound
                FROM pg_catalog.pg_inherits AS i
                INNER JOIN pg_catalog.pg_class AS c ON i.inhrelid = c.oid
                WHERE i.inhparent = 'PLSP.Log'::regclass
            ) AS b
            WHERE b.UpperBound <= v_Cutoff AND b.UpperBound > v_From
            ORDER BY b.UpperBound
        LOOP
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', r.Part) INTO v_HasRows;
            CONTINUE WHEN NOT v_HasRows;
            IF v_Partition IS NULL THEN
                v_Partition := r.Part;
                v_UpperBound := r.UpperBound;
            ELSE
                v_MoreMonths := true;
                EXIT;
            END IF;
        END LOOP;
    END IF;
    v_DefaultRows := EXISTS (SELECT 1 FROM PLSP.Log_Default AS d WHERE d.LoggedUtc < v_Cutoff);

    ----------------------------------------------------------------------------
    -- Do the work: step 1, ensure the months ahead have partitions
    ----------------------------------------------------------------------------
    IF p_Position IS NULL THEN
        CALL Job.log_partitions_ensure(v_PartitionMonthsAhead, p_Execute, v_LockWaitMs, v_Created, p_Note);
        IF v_Created > 0 OR p_Note IS NOT NULL THEN
            p_Rows := v_Created;
            p_Position := 0;
            p_Done := v_Partition IS NULL AND NOT v_DefaultRows;
            RETURN;
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: step 2, empty the next old month partition
    ----------------------------------------------------------------------------
    IF v_Partition IS NOT NULL THEN
        p_Position := (extract(EPOCH FROM v_UpperBound) * 1000)::bigint;
        p_Done := NOT v_MoreMonths AND NOT v_DefaultRows;

        IF p_Execute = 'Y' THEN
            -- NOWAIT, retried, never queued.
            v_Deadline := clock_timestamp() + v_LockWaitMs * INTERVAL '1 millisecond';
            LOOP
                BEGIN
                    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', v_Partition);
                    v_Locked := true;
                EXCEPTION WHEN lock_not_available THEN
                    v_Locked := false;
                END;
                EXIT WHEN v_Locked OR clock_timestamp() >= v_Deadline;
                PERFORM pg_sleep(0.01);
            END LOOP;
            IF NOT v_Locked THEN
                p_Rows := 0;
                p_Note := format(
                    '%s busy: no lock within %s ms (someone is reading it), left for the next run',
                    v_Partition, v_LockWaitMs
                );
                RETURN;
            END IF;
        END IF;

        -- The statistics' live-row count first (O(1)); when it is small, count.
        v_Counted := pg_stat_get_live_tuples(v_Partition);
        IF v_Counted <= v_CountExactMax THEN
            EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %s) AS c', v_Partition, v_CountExactMax + 1)
            INTO v_Counted;
        END IF;
        p_Rows := least(v_Counted, 2147483647);

        IF p_Execute = 'Y' THEN
            EXECUTE format('TRUNCATE TABLE %s', v_Partition);
        END IF;
        p_Note := concat(
            CASE WHEN p_Execute = 'Y' THEN 'emptied ' ELSE 'would empty ' END, v_Partition,
            ' (logged before ', to_char(v_UpperBound, 'YYYY-MM-DD'), '), ',
            CASE WHEN v_Counted > v_CountExactMax THEN 'about ' END, p_Rows, ' rows'
        );
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: step 3, old rows in the default partition, in batches
    ----------------------------------------------------------------------------
    p_Position := -1;
    IF p_Execute = 'Y' THEN
        -- By address (ctid), as Job.session_purge_batch does: a TID scan.
        DELETE FROM PLSP.Log_Default AS d
        WHERE d.ctid = ANY (ARRAY(
            SELECT x.ctid
            FROM PLSP.Log_Default AS x
            WHERE x.LoggedUtc < v_Cutoff
            ORDER BY x.LoggedUtc, x.LogId
            LIMIT p_BatchSize
            FOR UPDATE SKIP LOCKED
        ))
        AND d.LoggedUtc < v_Cutoff;
        GET DIAGNOSTICS p_Rows = ROW_COUNT;
        p_Done := p_Rows < p_BatchSize;
    ELSE
        SELECT count(*) INTO v_Counted
        FROM (
            SELECT 1
            FROM PLSP.Log_Default AS d
            WHERE d.LoggedUtc < v_Cutoff
            LIMIT v_CountExactMax + 1
        ) AS c;
        p_Rows := v_Counted;
        p_Done := true;
    END IF;
    p_Note := concat(
        CASE
            WHEN p_Execute = 'Y' THEN 'deleted ' || p_Rows
            WHEN v_Counted > v_CountExactMax THEN 'would delete more than ' || v_CountExactMax
            ELSE 'would delete ' || p_Rows
        END,
        ' rows logged before ', to_char(v_Cutoff, 'YYYY-MM-DD'), ' from PLSP.Log_Default'
    );
END;
$$;
