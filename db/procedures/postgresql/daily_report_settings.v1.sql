-- Monitor.daily_report_settings, version 1.
-- The settings of the daily report (job daily_report) from Ops.Setting: the
-- recipients, the sender and the WARN / FAIL thresholds, as name/value rows.
-- A DBA changes them with an UPDATE; the next report reads them. The report
-- checks each value and names a malformed one.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.daily_report_settings()
RETURNS TABLE (
    Name varchar,
    Value varchar,
    Description varchar
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters: none
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT s.Name::varchar, s.Value::varchar, s.Description::varchar
    FROM Ops.Setting AS s
    WHERE s.JobName = 'daily_report'
    ORDER BY s.Name;
END;
$$;
