-- Upload.upload_throttled, version 2.
-- Counts requests the service refused with 429 (a clinic's token bucket, the
-- concurrency limits) or shed, into Ops.UploadStatistic.Throttled per LPS (SOR
-- code) and UTC day. The service counts them in memory and flushes all of them
-- every few seconds in one call, so a flood of 429s costs the database one
-- small statement every few seconds, whatever its size.
-- p_Counts is a JSON array of {"sor": "<digits>", "day": "YYYY-MM-DD",
-- "count": n}, 1 to 1000 entries, each day at most 7 days before p_NowUtc
-- (NULL: now) and not after it; one upsert adds them all.
-- Version 2 (issue 11): the count is capped at the largest int (2147483647,
-- the column's type) instead of overflowing: a flood of 429s on one day, or
-- a bad caller, cannot make the flush fail (and be retried for ever); the
-- counts are summed as bigint, capped, then stored.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: jsonb
-- functions read the counts (T-SQL: OPENJSON); ON CONFLICT upserts (T-SQL:
-- UPDATE WITH (UPDLOCK, HOLDLOCK) then INSERT WHERE NOT EXISTS).
CREATE PROCEDURE Upload.upload_throttled(
    p_Counts text,
    p_NowUtc timestamp(3) DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_MaxCount constant bigint := 2147483647;  -- the largest int: Ops.UploadStatistic.Throttled's type
    v_Errors text := '';
    v_Now timestamp(3) := coalesce(p_NowUtc, date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC'));
    v_Json jsonb;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; no transaction control here.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    BEGIN
        v_Json := p_Counts::jsonb;
    EXCEPTION WHEN OTHERS THEN
        v_Json := NULL;
    END;
    IF v_Json IS NULL OR jsonb_typeof(v_Json) <> 'array' OR jsonb_array_length(v_Json) NOT BETWEEN 1 AND 1000
        OR EXISTS (
            SELECT 1
            FROM jsonb_array_elements(v_Json) AS e (j)
            WHERE jsonb_typeof(e.j) <> 'object'
                OR coalesce(e.j ->> 'sor', '') !~ '^[0-9]{1,20}$'
                OR coalesce(e.j ->> 'day', '') !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
                OR coalesce(e.j ->> 'count', '') !~ '^[0-9]{1,9}$'
        ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_Counts is not supported: give 1 to 1000 objects with sor (digits), day (YYYY-MM-DD), count. ';
    ELSIF EXISTS (
        SELECT 1
        FROM jsonb_array_elements(v_Json) AS e (j)
        WHERE (e.j ->> 'day')::date NOT BETWEEN v_Now::date - 7 AND v_Now::date
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_Counts is not supported: each day lies at most 7 days before now and not after it. ';
    END IF;
    IF p_NowUtc IS NOT NULL AND (p_NowUtc < '2000-01-01' OR p_NowUtc > '9000-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_NowUtc is not supported: give a UTC time after 2000, or NULL for now. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: one upsert for every LPS and day
    ----------------------------------------------------------------------------
    INSERT INTO Ops.UploadStatistic AS s (SorCode, DayUtc, Throttled)
    SELECT c.SorCode, c.DayUtc, least(sum(c.Throttled), c_MaxCount)::integer
    FROM (
        SELECT e.j ->> 'sor' AS SorCode, (e.j ->> 'day')::date AS DayUtc, (e.j ->> 'count')::bigint AS Throttled
        FROM jsonb_array_elements(v_Json) AS e (j)
    ) AS c
    GROUP BY c.SorCode, c.DayUtc
    ON CONFLICT (SorCode, DayUtc) DO UPDATE
    SET Throttled = least(s.Throttled::bigint + EXCLUDED.Throttled, c_MaxCount)::integer;
    GET DIAGNOSTICS p_Rows = ROW_COUNT;
END;
$$;
