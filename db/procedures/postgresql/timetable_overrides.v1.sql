-- Monitor.timetable_overrides, version 1.
-- The timetable overrides an operator has set in Ops.Setting, one row each:
-- a job's own rows named EveryMinutes (whole minutes dividing an hour, or whole
-- hours dividing a day), DailyAt (HH:MM, Danish time) or Enabled (Y or N). The
-- job registry holds the defaults; the orchestrator reads this at start and
-- every minute, `flp jobs` at each call. The values are returned as stored:
-- the reader checks them and names a malformed one (the job keeps its
-- default), so a typo never stops the orchestrator.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.timetable_overrides()
RETURNS TABLE (
    JobName varchar,
    Name varchar,
    Value varchar,
    UpdatedUtc timestamp
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    -- Check parameters: none (it has none).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read: the overrides, by job and name
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT
        s.JobName,
        s.Name,
        s.Value,
        s.UpdatedUtc::timestamp
    FROM Ops.Setting AS s
    WHERE s.Name IN ('EveryMinutes', 'DailyAt', 'Enabled')
    ORDER BY s.JobName ASC, s.Name ASC;
END;
$$;
