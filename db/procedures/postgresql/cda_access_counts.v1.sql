-- Monitor.cda_access_counts, version 1.
-- Requests for care-plan documents per UTC day, requester and purpose, for the
-- daily operations e-mail: requests, distinct patients (by keyed hash),
-- answers 304 (not modified), failures (HTTP 400 and over), mean and greatest
-- latency. p_Days days from p_Day (UTC date).
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.cda_access_counts(
    p_Day date,
    p_Days integer DEFAULT 1
)
RETURNS TABLE (
    Day date,
    RequesterKind varchar,
    Requester varchar,
    Purpose varchar,
    Requests integer,
    Patients integer,
    NotModified integer,
    Failures integer,
    MeanLatencyMs integer,
    MaxLatencyMs integer
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_Day IS NULL OR p_Day < '2000-01-01' OR p_Day >= '2100-01-01' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Day is not supported: give a UTC date from 2000 to 2099. ';
    END IF;
    IF p_Days IS NULL OR p_Days < 1 OR p_Days > 62 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Days is not supported: give 1 to 62 days. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Read: one row per day, requester and purpose
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT
        a.AccessedUtc::date,
        a.RequesterKind,
        a.Requester,
        a.Purpose,
        count(*)::integer,
        count(DISTINCT a.PatientHash)::integer,
        sum(CASE WHEN a.HttpStatus = 304 THEN 1 ELSE 0 END)::integer,
        sum(CASE WHEN a.HttpStatus >= 400 THEN 1 ELSE 0 END)::integer,
        avg(a.LatencyMs)::integer,
        max(a.LatencyMs)
    FROM PLSP.CdaAccessLog AS a
    WHERE a.AccessedUtc >= p_Day::timestamp AND a.AccessedUtc < (p_Day + p_Days)::timestamp
    GROUP BY a.AccessedUtc::date, a.RequesterKind, a.Requester, a.Purpose
    ORDER BY 1, 2, 3, 4;
END;
$$;
