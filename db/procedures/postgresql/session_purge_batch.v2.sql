-- Job.session_purge_batch, version 2.
-- One batch of the session purge (Job.session_purge runs it through
-- Job.run_batched): deletes up to p_BatchSize sessions whose ExpiresUtc has
-- passed, oldest expiry first, skipping rows another session has locked (a
-- login extending its session is never waited for; the next run takes it).
--
-- "Now" is the clock when the batch starts (clock_timestamp(), not now(): now()
-- is the transaction's start, which Job.run_batched's transaction may have
-- begun a sleep earlier), cut to milliseconds like the column: a session
-- expiring at that instant or later stays.
--
-- p_Position is the keyset: the last ExpiresUtc handled, as milliseconds since
-- 1970-01-01 UTC (NULL at the start). A batch reads from there on, so it does
-- not walk again over the index entries of the rows earlier batches deleted.
--   * Execute: from ExpiresUtc >= position (rows sharing the last millisecond
--     may remain after a full batch); the next position is the largest
--     ExpiresUtc deleted. Done when fewer than p_BatchSize rows were deleted.
--   * Dry run: counts p_BatchSize rows from ExpiresUtc > position, plus the rows
--     sharing the last millisecond counted (so each row is counted once, and a
--     dry batch may report a few rows more than p_BatchSize); writes nothing.
-- Runs with the owner's rights; does not COMMIT (the runner does).
--
-- Version 2 (issue 7): the clock at the batch instead of the transaction's
-- start; p_BatchSize at most 4000 as on SQL Server.
-- PostgreSQL differences from the T-SQL twin, forced by the engine: no READPAST
-- (FOR UPDATE SKIP LOCKED, and the rows go by address), no IMPLICIT_TRANSACTIONS
-- or DEADLOCK_PRIORITY to set, no transaction control; a char(1) parameter is
-- not cut to its length, so 'YES' for p_Execute is refused naming it.
CREATE PROCEDURE Job.session_purge_batch(
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
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
    v_From timestamp(3);
    v_Last timestamp(3);
    v_Found integer;
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
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (delete) or N (count only). ';
    END IF;
    IF p_Position < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give NULL or milliseconds since 1970-01-01 UTC. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    v_From := CASE
        WHEN p_Position IS NULL THEN TIMESTAMP '0001-01-01'
        ELSE TIMESTAMP '1970-01-01' + p_Position * INTERVAL '1 millisecond'
    END;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    IF p_Execute = 'Y' THEN
        -- The rows go by their address (ctid), locked a moment before by the
        -- same statement: a TID scan, never a join that could scan the table.
        WITH gone AS (
            DELETE FROM PLSP.Session AS s
            WHERE s.ctid = ANY (ARRAY(
                SELECT x.ctid
                FROM PLSP.Session AS x
                WHERE x.ExpiresUtc >= v_From AND x.ExpiresUtc < v_Now
                ORDER BY x.ExpiresUtc, x.SessionId
                LIMIT p_BatchSize
                FOR UPDATE SKIP LOCKED
            ))
            AND s.ExpiresUtc < v_Now
            RETURNING s.ExpiresUtc
        )

        SELECT count(*), max(g.ExpiresUtc) INTO p_Rows, v_Last
        FROM gone AS g;

        p_Done := p_Rows < p_BatchSize;
    ELSE
        SELECT count(*), max(c.ExpiresUtc) INTO v_Found, v_Last
        FROM (
            SELECT s.ExpiresUtc
            FROM PLSP.Session AS s
            WHERE s.ExpiresUtc > v_From AND s.ExpiresUtc < v_Now
            ORDER BY s.ExpiresUtc
            LIMIT p_BatchSize
        ) AS c;

        p_Rows := v_Found;
        IF v_Found = p_BatchSize THEN
            -- Rows sharing the last millisecond are counted now, not next batch.
            SELECT count(*) INTO p_Rows
            FROM PLSP.Session AS s
            WHERE s.ExpiresUtc > v_From AND s.ExpiresUtc <= v_Last;
        END IF;
        p_Done := v_Found < p_BatchSize;
    END IF;

    p_Position := CASE
        WHEN v_Last IS NULL THEN p_Position
        ELSE (extract(EPOCH FROM v_Last) * 1000)::bigint
    END;
    p_Note := concat(
        CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END, p_Rows,
        ' sessions expired before ', to_char(v_Now, 'YYYY-MM-DD"T"HH24:MI:SS.MS'),
        CASE WHEN v_Last IS NOT NULL THEN ', last expiry ' || to_char(v_Last, 'YYYY-MM-DD"T"HH24:MI:SS.MS') END
    );
END;
$$;
