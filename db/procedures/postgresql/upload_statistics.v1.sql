-- Monitor.upload_statistics, version 1.
-- Uploads per LPS (SOR code) and UTC day from p_FromDay to p_ToDay
-- (inclusive, at most 62 days): uploads, documents and rejected documents,
-- rows inserted, updated, unchanged (the no-op share of a resync) and
-- rejected, throttled requests, and the rejected rows by reason as
-- 'reason=rows' pairs. flp status and the daily e-mail read it.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.upload_statistics(
    p_FromDay date,
    p_ToDay date
)
RETURNS TABLE (
    SorCode varchar,
    DayUtc date,
    Uploads integer,
    Documents integer,
    RejectedDocuments integer,
    RowsInserted bigint,
    RowsUpdated bigint,
    RowsUnchanged bigint,
    RowsRejected bigint,
    Throttled integer,
    RejectedByReason varchar
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
    IF p_FromDay IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_FromDay is not supported: give the first UTC day. ';
    END IF;
    IF p_ToDay IS NULL OR p_ToDay < p_FromDay OR p_ToDay > p_FromDay + 61 THEN
        v_Errors := v_Errors || 'The value for the parameter p_ToDay is not supported: give the last UTC day, on or after p_FromDay, at most 62 days. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Read: one row per LPS and day, the newest day first
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT s.SorCode::varchar, s.DayUtc, s.Uploads, s.Documents, s.RejectedDocuments,
        s.RowsInserted, s.RowsUpdated, s.RowsUnchanged, s.RowsRejected, s.Throttled,
        (SELECT string_agg(r.Reason || '=' || r.RowsRejected, ' ' ORDER BY r.RowsRejected DESC, r.Reason)
         FROM Ops.UploadRejection AS r
         WHERE r.SorCode = s.SorCode AND r.DayUtc = s.DayUtc)::varchar
    FROM Ops.UploadStatistic AS s
    WHERE s.DayUtc BETWEEN p_FromDay AND p_ToDay
    ORDER BY s.DayUtc DESC, s.SorCode ASC;
END;
$$;
