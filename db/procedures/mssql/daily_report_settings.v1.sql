-- Monitor.daily_report_settings, version 1.
-- The settings of the daily report (job daily_report) from Ops.Setting: the
-- recipients, the sender and the WARN / FAIL thresholds, as name/value rows.
-- A DBA changes them with an UPDATE; the next report reads them. The report
-- checks each value and names a malformed one.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.daily_report_settings
AS
BEGIN
    SET NOCOUNT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters: none
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read
    ----------------------------------------------------------------------------
    SELECT s.Name, s.Value, s.Description
    FROM Ops.Setting AS s
    WHERE s.JobName = 'daily_report'
    ORDER BY s.Name;
END;
