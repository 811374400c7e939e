-- Job.log_cleanup_batch_as_owner, version 2.
-- The work of one step of the log clean-up, run with the owner's rights
-- (SECURITY DEFINER; the T-SQL twin is WITH EXECUTE AS OWNER). Job.log_cleanup_batch
-- (the batch procedure Job.run_batched calls) checks what it can in the
-- caller's context and calls this; it was version 1 of Job.log_cleanup_batch
-- until issue 7 split it.
--
-- PLSP.Log keeps the current UTC month and the RetentionMonths before it;
-- everything logged before that cutoff goes, a whole month at a time, so the
-- cost does not grow with the rows removed. The steps, in order:
--   1. ensure   (p_Position NULL): Job.log_partitions_ensure creates the first
--               month partition missing for now .. PartitionMonthsAhead; one row
--               of work per month. p_Position stays NULL while more months are
--               missing, so the next step creates the next one, each in its own
--               short transaction. Nothing to create: straight on to 2.
--   2. months   (p_Position >= 0): the next month partition wholly before the
--               cutoff that holds rows is emptied with TRUNCATE. p_Position is
--               then its upper bound, as milliseconds since 1970-01-01 UTC.
--   3. stragglers (p_Position <= -1): rows before the cutoff that no month
--               partition wholly before the cutoff holds (here: PLSP.Log_Default,
--               months that had no partition) go p_BatchSize at a time, oldest
--               first by (LoggedUtc, LogId). The keyset moves forward:
--               p_Position = -1 - (milliseconds from 0001-01-01 to the LoggedUtc
--               of the last row handled), -1 at the start, so no batch walks
--               again over what earlier batches deleted.
-- Why TRUNCATE of the partition, not DETACH + DROP + CREATE: TRUNCATE locks only
-- that old partition, which writers never touch (they insert through PLSP.Log
-- into the current month, and an insert locks only the partition it lands in).
-- DETACH without CONCURRENTLY (CONCURRENTLY cannot run in a procedure) and
-- CREATE TABLE ... PARTITION OF take ACCESS EXCLUSIVE on PLSP.Log itself: every
-- writer would wait for them, and queue behind them while they wait.
-- LockWaitMs: the longest the step tries for an old month's lock, asked with
-- NOWAIT every 10 ms so nobody ever queues behind the request (the T-SQL twin
-- asks for its SWITCH the same way, with LOCK_TIMEOUT 0). Not granted in time:
-- the month is left for the next run, the batch note says so, and the run goes on.
-- Rows of a month: counted exactly (count(*) under its lock, the rows the
-- TRUNCATE removes) when the month holds at most 10,000; a larger month is
-- reported with the catalog's count of its live rows (pg_stat_all_tables
-- n_live_tup, else pg_class.reltuples), and its note says "about N rows
-- (catalog count)". Version 1 counted every month exactly: the step then read
-- the whole month before emptying it, and its time grew with the rows removed
-- (bench/bench_log_cleanup.py, docs/benchmarks.md). A month the catalog knows
-- nothing about yet (never analysed, no statistics) is counted exactly. The
-- T-SQL twin does the same with sys.partitions.rows. Stragglers are always
-- counted exactly. A dry run counts the same way and writes nothing (no
-- partitions created either).
-- "Now" is the clock at the step (clock_timestamp()), not the transaction start.
-- Runs with the owner's rights; does not COMMIT (the runner does).
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: TRUNCATE of
-- the partition instead of SWITCH to a switch-out table (so no switch-target
-- check); stragglers live in the default partition instead of the partition
-- that holds the cutoff; no READPAST (FOR UPDATE SKIP LOCKED); every other lock
-- of the step is bounded by lock_timeout = LockWaitMs.
CREATE PROCEDURE Job.log_cleanup_batch_as_owner(
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
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
    v_RetentionMonths integer;
    v_LockWaitMs integer;
    v_PartitionMonthsAhead integer;
    v_Cutoff timestamp(3);
    v_From timestamp(3);
    v_KeyFrom timestamp(3);
    v_Inclusive boolean;
    v_Partition regclass;
    v_UpperBound timestamp(3);
    v_MoreMonths boolean := false;
    v_StragglerRows boolean := false;
    v_HasRows boolean;
    v_Counted bigint;
    v_CatalogRows bigint;
    v_Estimated boolean := false;
    v_Found integer;
    v_Last timestamp(3);
    v_Created integer;
    v_More boolean;
    v_Locked boolean;
    v_Deadline timestamptz;
    r record;
BEGIN
    -- PostgreSQL has no READPAST, IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY: nothing to set.

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
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (remove) or N (count only). ';
    END IF;
    IF p_Position < -315537897600001 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give NULL, a step position from an earlier call, or -1. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Check settings (Ops.Setting, job log_cleanup; read before every step).
    -- Digits only, as the T-SQL twin reads them: ' 200', '+5' and '.5' are refused.
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
    -- The straggler keyset: from the start, or from the last row handled.
    v_KeyFrom := CASE
        WHEN p_Position IS NULL OR p_Position >= -1 THEN TIMESTAMP '0001-01-01'
        ELSE TIMESTAMP '0001-01-01' + (-1 - p_Position) * INTERVAL '1 millisecond'
    END;
    v_Inclusive := p_Position IS NULL OR p_Position >= -1;
    -- A backstop for every lock taken here. A local setting lasts to the end of
    -- the transaction (the runner's), but the SET lock_timeout clause of this
    -- procedure restores the caller's value when this returns.
    PERFORM set_config('lock_timeout', greatest(v_LockWaitMs, 10) || 'ms', true);

    ----------------------------------------------------------------------------
    -- Survey: the next old month partition holding rows, whether another
    -- follows, and whether stragglers remain.
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
        v_StragglerRows := EXISTS (SELECT 1 FROM PLSP.Log_Default AS d WHERE d.LoggedUtc < v_Cutoff);
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: step 1, ensure the months ahead have partitions, one a step
    ----------------------------------------------------------------------------
    IF p_Position IS NULL THEN
        CALL Job.log_partitions_ensure(v_PartitionMonthsAhead, p_Execute, v_LockWaitMs, v_Created, p_Note, v_More);
        IF v_Created > 0 OR p_Note IS NOT NULL THEN
            p_Rows := v_Created;
            -- More months missing after the one just created: step 1 again.
            p_Position := CASE WHEN v_More AND v_Created > 0 THEN NULL ELSE 0 END;
            p_Done := p_Position IS NOT NULL AND v_Partition IS NULL AND NOT v_StragglerRows;
            RETURN;
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: step 2, empty the next old month partition
    ----------------------------------------------------------------------------
    IF v_Partition IS NOT NULL THEN
        p_Position := (extract(EPOCH FROM v_UpperBound) * 1000)::bigint;
        p_Done := NOT v_MoreMonths AND NOT v_StragglerRows;

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

        -- Exact when small: the rows the TRUNCATE removes (under its lock when
        -- executing), read up to 10,001 of them; larger, the catalog's count.
        EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s LIMIT 10001) AS c', v_Partition) INTO v_Counted;
        IF v_Counted > 10000 THEN
            SELECT coalesce(nullif(st.n_live_tup, 0), nullif(greatest(c.reltuples, 0)::bigint, 0))
            INTO v_CatalogRows
            FROM pg_class AS c
            LEFT JOIN pg_stat_all_tables AS st ON st.relid = c.oid
            WHERE c.oid = v_Partition;
            IF v_CatalogRows > 10000 THEN
                v_Counted := v_CatalogRows;
                v_Estimated := true;
            ELSE
                EXECUTE format('SELECT count(*) FROM %s', v_Partition) INTO v_Counted;  -- the catalog knows no better
            END IF;
        END IF;
        p_Rows := least(v_Counted, 2147483647);

        IF p_Execute = 'Y' THEN
            EXECUTE format('TRUNCATE TABLE %s', v_Partition);
        END IF;
        p_Note := concat(
            CASE WHEN p_Execute = 'Y' THEN 'emptied ' ELSE 'would empty ' END, v_Partition,
            ' (logged before ', to_char(v_UpperBound, 'YYYY-MM-DD'), '), ',
            CASE WHEN v_Estimated THEN concat('about ', p_Rows, ' rows (catalog count)') ELSE concat(p_Rows, ' rows') END
        );
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: step 3, stragglers (the default partition), in keyset batches
    ----------------------------------------------------------------------------
    IF p_Execute = 'Y' THEN
        -- By address (ctid), as Job.session_purge_batch does: a TID scan; oldest
        -- first by (LoggedUtc, LogId) from the keyset position on.
        WITH gone AS (
            DELETE FROM PLSP.Log_Default AS d
            WHERE d.ctid = ANY (ARRAY(
                SELECT x.ctid
                FROM PLSP.Log_Default AS x
                WHERE x.LoggedUtc >= v_KeyFrom AND x.LoggedUtc < v_Cutoff
                ORDER BY x.LoggedUtc, x.LogId
                LIMIT p_BatchSize
                FOR UPDATE SKIP LOCKED
            ))
            AND d.LoggedUtc < v_Cutoff
            RETURNING d.LoggedUtc
        )

        SELECT count(*), max(g.LoggedUtc) INTO p_Rows, v_Last
        FROM gone AS g;
        p_Done := p_Rows < p_BatchSize;
    ELSE
        -- Counted once each: p_BatchSize rows after the position, plus the rows
        -- sharing the last millisecond counted (as the session purge's dry run).
        SELECT count(*), max(c.LoggedUtc) INTO v_Found, v_Last
        FROM (
            SELECT d.LoggedUtc
            FROM PLSP.Log_Default AS d
            WHERE (d.LoggedUtc > v_KeyFrom OR (v_Inclusive AND d.LoggedUtc = v_KeyFrom)) AND d.LoggedUtc < v_Cutoff
            ORDER BY d.LoggedUtc, d.LogId
            LIMIT p_BatchSize
        ) AS c;
        p_Rows := v_Found;
        IF v_Found = p_BatchSize THEN
            SELECT count(*) INTO p_Rows
            FROM PLSP.Log_Default AS d
            WHERE (d.LoggedUtc > v_KeyFrom OR (v_Inclusive AND d.LoggedUtc = v_KeyFrom)) AND d.LoggedUtc <= v_Last;
        END IF;
        p_Done := v_Found < p_BatchSize;
    END IF;
    p_Position := CASE
        WHEN v_Last IS NULL THEN -1 - (extract(EPOCH FROM v_KeyFrom - TIMESTAMP '0001-01-01') * 1000)::bigint
        ELSE -1 - (extract(EPOCH FROM v_Last - TIMESTAMP '0001-01-01') * 1000)::bigint
    END;
    p_Note := concat(
        CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END, p_Rows,
        ' rows logged before ', to_char(v_Cutoff, 'YYYY-MM-DD'), ' from PLSP.Log_Default',
        CASE WHEN v_Last IS NOT NULL THEN ', last logged ' || to_char(v_Last, 'YYYY-MM-DD"T"HH24:MI:SS.MS') END
    );
END;
$$;
