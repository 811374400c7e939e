-- Job.log_partitions_ensure, version 2.
-- Makes sure PLSP.Log has a month partition for the current UTC month and the
-- p_MonthsAhead months after it, so log rows never pile up in the default
-- partition (whose rows can only be removed row by row). The foundation made
-- 2024-01 to 2030-12; this step keeps the window moving. Job.log_cleanup_batch
-- runs it as the first step of every clean-up.
--
-- One month per call: the first missing month of now .. p_MonthsAhead is
-- created, and p_More says whether another is missing after it; the caller
-- calls again, each call in its own short transaction (Job.run_batched commits
-- after every step), so no transaction holds the locks of many months. A dry
-- run (p_Execute = 'N') creates nothing and locks nothing, so it counts every
-- missing month at once (p_More false).
--
-- A missing month M is made as a plain table, filled with any rows of M that
-- already sit in PLSP.Log_Default (normally none), then attached:
--   * ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on PLSP.Log, which writers
--     (ROW EXCLUSIVE) do not conflict with; CREATE TABLE ... PARTITION OF would
--     take ACCESS EXCLUSIVE on PLSP.Log and stop every writer.
--   * It takes ACCESS EXCLUSIVE on PLSP.Log_Default (checked for rows of M).
--     That lock is asked for with NOWAIT, again every 10 ms for at most
--     p_LockWaitMs: a waiting request would make every later user of the
--     default partition queue behind it. Not granted in time: the month is left
--     for the next run and p_Note says so.
-- p_Created = months created (dry run: that would be created), the same count
-- as the T-SQL twin's (months, not boundaries). Runs with the owner's rights;
-- does not COMMIT.
--
-- Version 2 (issue 7): one month per call with p_More (version 1 created every
-- missing month in one transaction); the clock (clock_timestamp()), not the
-- transaction's start, decides the current month.
-- PostgreSQL differences from the T-SQL twin, forced by the engine: a month is
-- a table attached as a partition (T-SQL: up to two SPLIT RANGE boundaries);
-- the other locks of the step are bounded by lock_timeout = p_LockWaitMs
-- (ATTACH PARTITION has no NOWAIT), where T-SQL uses the caller's LOCK_TIMEOUT.
CREATE PROCEDURE Job.log_partitions_ensure(
    p_MonthsAhead integer,
    p_Execute char(1),
    p_LockWaitMs integer,
    INOUT p_Created integer DEFAULT NULL,
    INOUT p_Note varchar(400) DEFAULT NULL,
    INOUT p_More boolean DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '1s'  -- scopes the set_config below to this procedure
AS $$
DECLARE
    v_Errors text := '';
    v_CurrentMonth timestamp(3) := date_trunc('month', clock_timestamp() AT TIME ZONE 'UTC');
    v_Month timestamp(3);
    v_NextMonth timestamp(3);
    v_Name text;
    v_Names text := '';
    v_Target timestamp(3);
    v_Offset integer;
    v_Locked boolean;
    v_Deadline timestamptz;
    v_Moved bigint;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; this procedure has no transaction
    -- control (its caller's runner, Job.run_batched, commits after the call).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_MonthsAhead IS NULL OR p_MonthsAhead < 0 OR p_MonthsAhead > 120 THEN
        v_Errors := v_Errors || 'The value for the parameter p_MonthsAhead is not supported: give 0 to 120 months. ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (create) or N (count only). ';
    END IF;
    IF p_LockWaitMs IS NULL OR p_LockWaitMs < 0 OR p_LockWaitMs > 60000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_LockWaitMs is not supported: give 0 to 60000 milliseconds. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    p_Created := 0;
    p_Note := NULL;
    p_More := false;
    -- A backstop for every other lock taken here. A local setting lasts to the
    -- end of the transaction (the runner's), but the SET lock_timeout clause of
    -- this procedure restores the caller's value when this returns.
    PERFORM set_config('lock_timeout', greatest(p_LockWaitMs, 10) || 'ms', true);

    ----------------------------------------------------------------------------
    -- Survey: the missing months of now .. p_MonthsAhead (bounds read from the
    -- catalog, whatever the partitions are called)
    ----------------------------------------------------------------------------
    FOR v_Offset IN 0 .. p_MonthsAhead LOOP
        v_Month := v_CurrentMonth + make_interval(months => v_Offset);
        CONTINUE WHEN EXISTS (
            SELECT 1
            FROM (
                SELECT
                    substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']+)''\)')::timestamp AS LowerBound,
                    substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamp AS UpperBound
                FROM pg_catalog.pg_inherits AS i
                INNER JOIN pg_catalog.pg_class AS c ON i.inhrelid = c.oid
                WHERE i.inhparent = 'PLSP.Log'::regclass
            ) AS b
            WHERE b.LowerBound <= v_Month AND v_Month < b.UpperBound
        );
        IF p_Execute = 'N' THEN
            -- A dry run counts every missing month: it creates nothing.
            p_Created := p_Created + 1;
            v_Names := v_Names || ' log_' || to_char(v_Month, 'YYYYMM');
        ELSIF v_Target IS NULL THEN
            v_Target := v_Month;  -- the one month this call creates
        ELSE
            p_More := true;  -- another missing month: the next call's
            EXIT;
        END IF;
    END LOOP;

    ----------------------------------------------------------------------------
    -- Do the work: the first missing month
    ----------------------------------------------------------------------------
    IF v_Target IS NOT NULL THEN
        v_Month := v_Target;
        v_NextMonth := v_Month + INTERVAL '1 month';
        v_Name := 'log_' || to_char(v_Month, 'YYYYMM');

        -- The default partition: NOWAIT, retried, never queued.
        v_Deadline := clock_timestamp() + p_LockWaitMs * INTERVAL '1 millisecond';
        LOOP
            BEGIN
                LOCK TABLE PLSP.Log_Default IN ACCESS EXCLUSIVE MODE NOWAIT;
                v_Locked := true;
            EXCEPTION WHEN lock_not_available THEN
                v_Locked := false;
            END;
            EXIT WHEN v_Locked OR clock_timestamp() >= v_Deadline;
            PERFORM pg_sleep(0.01);
        END LOOP;

        IF NOT v_Locked THEN
            p_Note := format(
                'PLSP.Log_Default busy: no lock within %s ms, %s and later months left for the next run',
                p_LockWaitMs, v_Name
            );
            p_More := false;  -- the caller moves on; the next run tries again
        ELSE
            BEGIN
                EXECUTE format(
                    'CREATE TABLE PLSP.%I (LIKE PLSP.Log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_Name
                );
                EXECUTE format(
                    'WITH moved AS ('
                    ' DELETE FROM PLSP.Log_Default AS d WHERE d.LoggedUtc >= $1 AND d.LoggedUtc < $2 RETURNING d.*'
                    ') INSERT INTO PLSP.%I SELECT * FROM moved',
                    v_Name
                ) USING v_Month, v_NextMonth;
                GET DIAGNOSTICS v_Moved = ROW_COUNT;
                -- Waits for other DDL on PLSP.Log only, and for lock_timeout at most.
                EXECUTE format(
                    'ALTER TABLE PLSP.Log ATTACH PARTITION PLSP.%I FOR VALUES FROM (%L) TO (%L)',
                    v_Name, v_Month, v_NextMonth
                );
                p_Created := 1;
                v_Names := ' ' || v_Name || CASE WHEN v_Moved > 0 THEN format(' (%s rows moved from the default partition)', v_Moved) ELSE '' END;
            EXCEPTION WHEN lock_not_available THEN
                p_Note := format(
                    'PLSP.Log busy (other DDL): no lock within %s ms, %s and later months left for the next run',
                    p_LockWaitMs, v_Name
                );
                p_More := false;
            END;
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Log end: what was done, for the job's batch note
    ----------------------------------------------------------------------------
    IF p_Created > 0 THEN
        p_Note := left(concat(
            CASE WHEN p_Execute = 'Y' THEN 'created' ELSE 'would create' END, v_Names,
            CASE WHEN p_More THEN '; more months missing: next step' END
        ), 400);
    END IF;
END;
$$;
