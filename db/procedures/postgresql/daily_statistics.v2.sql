-- Monitor.daily_statistics, version 2.
-- The operations statistics of the daily report (flp report, the 23:30 job
-- daily_report) for the UTC days p_FromDate to p_ToDate (one day when
-- p_ToDate is NULL; at most 62 days: the mail's trend asks for 14), as one
-- key/value table: Day (NULL for a value of the moment, not of a day), Section,
-- Subject, Metric, Value. A later capability adds its rows under a section of
-- its own without changing the columns. Rows with a zero value are left out;
-- a reader treats a missing row as 0.
--
--   jobs / <job>            runs (not skipped or missed), succeeded, failed, stopped,
--                           abandoned, skipped, missed, rows, duration_p50_ms,
--                           duration_max_ms (of the finished runs)
--   maintenance / <what>    sessions_purged, log_rows_removed, aim_archived: the rows
--                           of the succeeded or stopped runs of those jobs
--   aim / FLP_AIM           created, delivered, backlog (not delivered at the end of
--                           the day, FLP_AIM and FLP_AIM_History)
--   aim / <queue>           dead_lettered (Ops.QueueDeadLetter, the database queue's)
--   conversion / Patientvaerdier   converted, invalid, rejected (last attempt that day)
--   inclusion / <ForloebCode>      included, excluded (PatientInkluderet_History)
--   Day NULL, as of AsOf (now, or the end of p_ToDate when that is earlier):
--   aim / FLP_AIM           pending, queued, oldest_pending_seconds
--   aim / <queue>           waiting (Ops.QueueMessage), dead_letters
--   conversion / Patientvaerdier   unconverted, invalid, rejected
--                           (unconverted: waiting in PLSP.Patientvaerdier_Pending, plus
--                           any of status 0 still in PLSP.Patientvaerdier)
--   database / size         bytes
--
-- Version 2 (migration 0023): new values wait in PLSP.Patientvaerdier_Pending.
--
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.daily_statistics(
    p_FromDate date,
    p_ToDate date DEFAULT NULL
)
RETURNS TABLE (
    Day date,
    Section varchar,
    Subject varchar,
    Metric varchar,
    Value bigint
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_Errors text := '';
    v_NowUtc timestamp(3) := (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3);
    v_ToDate date := coalesce(p_ToDate, p_FromDate);
    v_FromUtc timestamp(3);
    v_ToUtc timestamp(3);
    v_AsOfUtc timestamp(3);
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_FromDate IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_FromDate is not supported: give the first day (a date, UTC). ';
    END IF;
    IF p_ToDate IS NOT NULL AND p_FromDate IS NOT NULL AND (p_ToDate < p_FromDate OR p_ToDate - p_FromDate > 61) THEN
        v_Errors := v_Errors || 'The value for the parameter p_ToDate is not supported: give a day from p_FromDate to 61 days after it, or NULL for p_FromDate alone. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Read: the days, then the values of the moment
    ----------------------------------------------------------------------------
    v_FromUtc := p_FromDate::timestamp(3);
    v_ToUtc := (v_ToDate + 1)::timestamp(3);
    v_AsOfUtc := least(v_NowUtc, v_ToUtc);

    -- Jobs: one row per job and day.
    RETURN QUERY
    WITH Runs AS (
        SELECT
            r.StartedUtc::date AS Day,
            r.JobName,
            r.Status,
            r.RowsAffected,
            CASE
                WHEN r.EndedUtc IS NOT NULL AND r.Status NOT IN ('skipped', 'missed')
                    THEN (extract(EPOCH FROM r.EndedUtc - r.StartedUtc) * 1000)::bigint
            END AS DurationMs
        FROM Ops.JobRun AS r
        WHERE r.StartedUtc >= v_FromUtc AND r.StartedUtc < v_ToUtc
    ),

    PerJob AS (
        SELECT
            u.Day,
            u.JobName,
            count(*) FILTER (WHERE u.Status NOT IN ('skipped', 'missed')) AS Runs,
            count(*) FILTER (WHERE u.Status = 'succeeded') AS Succeeded,
            count(*) FILTER (WHERE u.Status = 'failed') AS Failed,
            count(*) FILTER (WHERE u.Status = 'stopped') AS Stopped,
            count(*) FILTER (WHERE u.Status = 'abandoned') AS Abandoned,
            count(*) FILTER (WHERE u.Status = 'skipped') AS Skipped,
            count(*) FILTER (WHERE u.Status = 'missed') AS Missed,
            sum(u.RowsAffected) FILTER (WHERE u.Status NOT IN ('skipped', 'missed'))::bigint AS RowsDone,
            sum(u.RowsAffected) FILTER (WHERE u.Status IN ('succeeded', 'stopped'))::bigint AS RowsClean,
            (percentile_disc(0.5) WITHIN GROUP (ORDER BY u.DurationMs))::bigint AS P50Ms,
            max(u.DurationMs)::bigint AS MaxMs
        FROM Runs AS u
        GROUP BY u.Day, u.JobName
    )

    SELECT k.Day, k.Section::varchar, k.Subject::varchar, k.Metric::varchar, k.Value
    FROM (
        SELECT j.Day, 'jobs' AS Section, j.JobName AS Subject, m.Metric, m.Value
        FROM PerJob AS j
        CROSS JOIN LATERAL (VALUES
            (1, 'runs', j.Runs),
            (2, 'succeeded', j.Succeeded),
            (3, 'failed', j.Failed),
            (4, 'stopped', j.Stopped),
            (5, 'abandoned', j.Abandoned),
            (6, 'skipped', j.Skipped),
            (7, 'missed', j.Missed),
            (8, 'rows', j.RowsDone),
            (9, 'duration_p50_ms', j.P50Ms),
            (10, 'duration_max_ms', j.MaxMs)
        ) AS m (Position, Metric, Value)
        UNION ALL
        SELECT j.Day, 'maintenance', w.Subject, w.Metric, j.RowsClean
        FROM PerJob AS j
        INNER JOIN (VALUES
            ('session_purge', 'sessions_purged', 'sessions_purged'),
            ('log_cleanup', 'log_rows_removed', 'log_rows_removed'),
            ('archive_aim', 'aim_archived', 'aim_archived')
        ) AS w (JobName, Subject, Metric) ON j.JobName = w.JobName
    ) AS k
    WHERE k.Value <> 0;

    -- AIM by day: created, delivered, and the backlog at the end of the day.
    RETURN QUERY
    WITH Days AS (
        SELECT d::date AS Day, d::timestamp(3) AS StartUtc, (d + interval '1 day')::timestamp(3) AS EndUtc
        FROM generate_series(p_FromDate::timestamp, v_ToDate::timestamp, interval '1 day') AS d
    ),

    Aim AS (
        SELECT a.CreatedUtc, a.DeliveredUtc
        FROM PLSP.FLP_AIM AS a
        WHERE a.CreatedUtc < v_ToUtc AND (a.DeliveredUtc IS NULL OR a.DeliveredUtc >= v_FromUtc)
        UNION ALL
        SELECT h.CreatedUtc, h.DeliveredUtc
        FROM PLSP.FLP_AIM_History AS h
        WHERE h.CreatedUtc < v_ToUtc AND (h.DeliveredUtc IS NULL OR h.DeliveredUtc >= v_FromUtc)
    ),

    PerDay AS (
        SELECT
            d.Day,
            count(*) FILTER (WHERE a.CreatedUtc >= d.StartUtc AND a.CreatedUtc < d.EndUtc) AS Created,
            count(*) FILTER (WHERE a.DeliveredUtc >= d.StartUtc AND a.DeliveredUtc < d.EndUtc) AS Delivered,
            count(*) FILTER (
                WHERE a.CreatedUtc < d.EndUtc AND (a.DeliveredUtc IS NULL OR a.DeliveredUtc >= d.EndUtc)
            ) AS Backlog
        FROM Days AS d
        INNER JOIN Aim AS a
            ON d.EndUtc > a.CreatedUtc AND (a.DeliveredUtc IS NULL OR d.StartUtc <= a.DeliveredUtc)
        GROUP BY d.Day
    )

    SELECT p.Day, 'aim'::varchar, 'FLP_AIM'::varchar, m.Metric::varchar, m.Value
    FROM PerDay AS p
    CROSS JOIN LATERAL (VALUES
        ('created', p.Created),
        ('delivered', p.Delivered),
        ('backlog', p.Backlog)
    ) AS m (Metric, Value)
    WHERE m.Value <> 0;

    -- Dead letters, conversion and inclusion by day.
    RETURN QUERY
    SELECT q.DeadLetteredUtc::date, 'aim'::varchar, q.QueueName::varchar, 'dead_lettered'::varchar, count(*)
    FROM Ops.QueueDeadLetter AS q
    WHERE q.DeadLetteredUtc >= v_FromUtc AND q.DeadLetteredUtc < v_ToUtc
    GROUP BY q.DeadLetteredUtc::date, q.QueueName;

    RETURN QUERY
    SELECT
        v.ConvertedUtc::date,
        'conversion'::varchar,
        'Patientvaerdier'::varchar,
        (CASE v.ConversionStatus WHEN 1 THEN 'converted' WHEN 2 THEN 'invalid' ELSE 'rejected' END)::varchar,
        count(*)
    FROM PLSP.Patientvaerdier AS v
    WHERE v.ConvertedUtc >= v_FromUtc AND v.ConvertedUtc < v_ToUtc AND v.ConversionStatus IN (1, 2, 3)
    GROUP BY v.ConvertedUtc::date, v.ConversionStatus;

    RETURN QUERY
    SELECT
        i.ChangedUtc::date,
        'inclusion'::varchar,
        i.ForloebCode::varchar,
        (CASE WHEN i.IsIncluded THEN 'included' ELSE 'excluded' END)::varchar,
        count(*)
    FROM PLSP.PatientInkluderet_History AS i
    WHERE i.ChangedUtc >= v_FromUtc AND i.ChangedUtc < v_ToUtc
    GROUP BY i.ChangedUtc::date, i.ForloebCode, i.IsIncluded;

    -- The values of the moment (Day NULL).
    RETURN QUERY
    SELECT NULL::date, 'aim'::varchar, 'FLP_AIM'::varchar, m.Metric::varchar, m.Value
    FROM (
        SELECT
            count(*) FILTER (WHERE a.Status = 0) AS Pending,
            count(*) FILTER (WHERE a.Status = 1) AS Queued,
            greatest(0, extract(EPOCH FROM v_AsOfUtc - min(a.CreatedUtc) FILTER (WHERE a.Status = 0)))::bigint AS Oldest
        FROM PLSP.FLP_AIM AS a
        WHERE a.Status IN (0, 1)
    ) AS s
    CROSS JOIN LATERAL (VALUES
        ('pending', s.Pending),
        ('queued', s.Queued),
        ('oldest_pending_seconds', s.Oldest)
    ) AS m (Metric, Value)
    WHERE m.Value <> 0;

    RETURN QUERY
    SELECT NULL::date, 'aim'::varchar, w.QueueName::varchar, w.Metric::varchar, count(*)
    FROM (
        SELECT q.QueueName, 'waiting' AS Metric FROM Ops.QueueMessage AS q
        UNION ALL
        SELECT l.QueueName, 'dead_letters' FROM Ops.QueueDeadLetter AS l
    ) AS w
    GROUP BY w.QueueName, w.Metric;

    RETURN QUERY
    SELECT
        NULL::date,
        'conversion'::varchar,
        'Patientvaerdier'::varchar,
        (CASE v.ConversionStatus WHEN 0 THEN 'unconverted' WHEN 2 THEN 'invalid' ELSE 'rejected' END)::varchar,
        count(*)
    FROM (
        SELECT w.ConversionStatus FROM PLSP.Patientvaerdier AS w WHERE w.ConversionStatus IN (0, 2, 3)
        UNION ALL
        SELECT 0::smallint FROM PLSP.Patientvaerdier_Pending
    ) AS v
    GROUP BY v.ConversionStatus;

    RETURN QUERY
    SELECT NULL::date, 'database'::varchar, 'size'::varchar, 'bytes'::varchar, pg_database_size(current_database())::bigint;
END;
$$;
