-- Monitor.daily_statistics, version 2.
-- The operations statistics of the daily report (flp report, the 23:30 job
-- daily_report) for the UTC days @FromDate to @ToDate (one day when
-- @ToDate is NULL; at most 62 days: the mail's trend asks for 14), as one
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
--   Day NULL, as of AsOf (now, or the end of @ToDate when that is earlier):
--   aim / FLP_AIM           pending, queued, oldest_pending_seconds
--   aim / <queue>           waiting (Ops.QueueMessage), dead_letters
--   conversion / Patientvaerdier   unconverted, invalid, rejected
--                           (unconverted: waiting in PLSP.Patientvaerdier_Pending, plus
--                           any of status 0 still in PLSP.Patientvaerdier)
--   database / size         bytes
--
-- Version 2 (migration 0023): new values wait in PLSP.Patientvaerdier_Pending.
--
-- Twin difference: a procedure returning one result set here (the rows are
-- gathered in a table variable), a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.daily_statistics
    @FromDate date,
    @ToDate date = NULL
AS
BEGIN
    SET NOCOUNT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @LastDate date = COALESCE(@ToDate, @FromDate);
    DECLARE @FromUtc datetime2(3);
    DECLARE @ToUtc datetime2(3);
    DECLARE @AsOfUtc datetime2(3);
    DECLARE @Day date;
    DECLARE @Days TABLE (Day date NOT NULL PRIMARY KEY, StartUtc datetime2(3) NOT NULL, EndUtc datetime2(3) NOT NULL);
    DECLARE @Stats TABLE (
        Position int IDENTITY (1, 1) NOT NULL PRIMARY KEY,
        Day date NULL,
        Section varchar(100) NOT NULL,
        Subject varchar(100) NOT NULL,
        Metric varchar(100) NOT NULL,
        Value bigint NOT NULL
    );

    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @FromDate IS NULL
        SET @Errors += N'The value for the parameter @FromDate is not supported: give the first day (a date, UTC). ';
    IF @ToDate IS NOT NULL AND @FromDate IS NOT NULL AND (@ToDate < @FromDate OR DATEDIFF(DAY, @FromDate, @ToDate) > 61)
        SET @Errors += N'The value for the parameter @ToDate is not supported: give a day from @FromDate to 61 days after it, or NULL for @FromDate alone. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Read: the days, then the values of the moment
    ----------------------------------------------------------------------------
    SET @FromUtc = CAST(@FromDate AS datetime2(3));
    SET @ToUtc = DATEADD(DAY, 1, CAST(@LastDate AS datetime2(3)));
    SET @AsOfUtc = CASE WHEN @NowUtc < @ToUtc THEN @NowUtc ELSE @ToUtc END;

    SET @Day = @FromDate;
    WHILE @Day <= @LastDate
    BEGIN
        INSERT INTO @Days (Day, StartUtc, EndUtc)
        VALUES (@Day, CAST(@Day AS datetime2(3)), DATEADD(DAY, 1, CAST(@Day AS datetime2(3))));
        SET @Day = DATEADD(DAY, 1, @Day);
    END;

    -- Jobs: one row per job and day.
    WITH Runs AS (
        SELECT
            CAST(r.StartedUtc AS date) AS Day,
            r.JobName,
            r.Status,
            r.RowsAffected,
            CASE
                WHEN r.EndedUtc IS NOT NULL AND r.Status NOT IN ('skipped', 'missed')
                    THEN DATEDIFF_BIG(MILLISECOND, r.StartedUtc, r.EndedUtc)
            END AS DurationMs
        FROM Ops.JobRun AS r
        WHERE r.StartedUtc >= @FromUtc AND r.StartedUtc < @ToUtc
    ),

    Medians AS (
        SELECT DISTINCT
            u.Day,
            u.JobName,
            PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY u.DurationMs) OVER (PARTITION BY u.Day, u.JobName) AS P50Ms
        FROM Runs AS u
    ),

    PerJob AS (
        SELECT
            u.Day,
            u.JobName,
            SUM(CASE WHEN u.Status NOT IN ('skipped', 'missed') THEN 1 ELSE 0 END) AS Runs,
            SUM(CASE WHEN u.Status = 'succeeded' THEN 1 ELSE 0 END) AS Succeeded,
            SUM(CASE WHEN u.Status = 'failed' THEN 1 ELSE 0 END) AS Failed,
            SUM(CASE WHEN u.Status = 'stopped' THEN 1 ELSE 0 END) AS Stopped,
            SUM(CASE WHEN u.Status = 'abandoned' THEN 1 ELSE 0 END) AS Abandoned,
            SUM(CASE WHEN u.Status = 'skipped' THEN 1 ELSE 0 END) AS Skipped,
            SUM(CASE WHEN u.Status = 'missed' THEN 1 ELSE 0 END) AS Missed,
            SUM(CASE WHEN u.Status NOT IN ('skipped', 'missed') THEN u.RowsAffected ELSE 0 END) AS RowsDone,
            SUM(CASE WHEN u.Status IN ('succeeded', 'stopped') THEN u.RowsAffected ELSE 0 END) AS RowsClean,
            MAX(u.DurationMs) AS MaxMs
        FROM Runs AS u
        GROUP BY u.Day, u.JobName
    )

    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT k.Day, k.Section, k.Subject, k.Metric, k.Value
    FROM (
        SELECT j.Day, 'jobs' AS Section, j.JobName AS Subject, m.Metric, m.Value
        FROM PerJob AS j
        INNER JOIN Medians AS p ON j.Day = p.Day AND j.JobName = p.JobName
        CROSS APPLY (VALUES
            (1, 'runs', CAST(j.Runs AS bigint)),
            (2, 'succeeded', CAST(j.Succeeded AS bigint)),
            (3, 'failed', CAST(j.Failed AS bigint)),
            (4, 'stopped', CAST(j.Stopped AS bigint)),
            (5, 'abandoned', CAST(j.Abandoned AS bigint)),
            (6, 'skipped', CAST(j.Skipped AS bigint)),
            (7, 'missed', CAST(j.Missed AS bigint)),
            (8, 'rows', CAST(j.RowsDone AS bigint)),
            (9, 'duration_p50_ms', CAST(p.P50Ms AS bigint)),
            (10, 'duration_max_ms', CAST(j.MaxMs AS bigint))
        ) AS m (Position, Metric, Value)
        UNION ALL
        SELECT j.Day, 'maintenance', w.Subject, w.Metric, CAST(j.RowsClean AS bigint)
        FROM PerJob AS j
        INNER JOIN (VALUES
            ('session_purge', 'sessions_purged', 'sessions_purged'),
            ('log_cleanup', 'log_rows_removed', 'log_rows_removed'),
            ('archive_aim', 'aim_archived', 'aim_archived')
        ) AS w (JobName, Subject, Metric) ON j.JobName = w.JobName
    ) AS k
    WHERE k.Value <> 0;

    -- AIM by day: created, delivered, and the backlog at the end of the day.
    WITH Aim AS (
        SELECT a.CreatedUtc, a.DeliveredUtc
        FROM PLSP.FLP_AIM AS a
        WHERE a.CreatedUtc < @ToUtc AND (a.DeliveredUtc IS NULL OR a.DeliveredUtc >= @FromUtc)
        UNION ALL
        SELECT h.CreatedUtc, h.DeliveredUtc
        FROM PLSP.FLP_AIM_History AS h
        WHERE h.CreatedUtc < @ToUtc AND (h.DeliveredUtc IS NULL OR h.DeliveredUtc >= @FromUtc)
    ),

    PerDay AS (
        SELECT
            d.Day,
            SUM(CASE WHEN a.CreatedUtc >= d.StartUtc AND a.CreatedUtc < d.EndUtc THEN 1 ELSE 0 END) AS Created,
            SUM(CASE WHEN a.DeliveredUtc >= d.StartUtc AND a.DeliveredUtc < d.EndUtc THEN 1 ELSE 0 END) AS Delivered,
            SUM(
                CASE WHEN a.CreatedUtc < d.EndUtc AND (a.DeliveredUtc IS NULL OR a.DeliveredUtc >= d.EndUtc) THEN 1 ELSE 0 END
            ) AS Backlog
        FROM @Days AS d
        INNER JOIN Aim AS a
            ON d.EndUtc > a.CreatedUtc AND (a.DeliveredUtc IS NULL OR d.StartUtc <= a.DeliveredUtc)
        GROUP BY d.Day
    )

    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT p.Day, 'aim', 'FLP_AIM', m.Metric, m.Value
    FROM PerDay AS p
    CROSS APPLY (VALUES
        ('created', CAST(p.Created AS bigint)),
        ('delivered', CAST(p.Delivered AS bigint)),
        ('backlog', CAST(p.Backlog AS bigint))
    ) AS m (Metric, Value)
    WHERE m.Value <> 0;

    -- Dead letters, conversion and inclusion by day.
    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT CAST(q.DeadLetteredUtc AS date), 'aim', q.QueueName, 'dead_lettered', COUNT_BIG(*)
    FROM Ops.QueueDeadLetter AS q
    WHERE q.DeadLetteredUtc >= @FromUtc AND q.DeadLetteredUtc < @ToUtc
    GROUP BY CAST(q.DeadLetteredUtc AS date), q.QueueName;

    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT
        CAST(v.ConvertedUtc AS date),
        'conversion',
        'Patientvaerdier',
        CASE v.ConversionStatus WHEN 1 THEN 'converted' WHEN 2 THEN 'invalid' ELSE 'rejected' END,
        COUNT_BIG(*)
    FROM PLSP.Patientvaerdier AS v
    WHERE v.ConvertedUtc >= @FromUtc AND v.ConvertedUtc < @ToUtc AND v.ConversionStatus IN (1, 2, 3)
    GROUP BY CAST(v.ConvertedUtc AS date), v.ConversionStatus;

    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT
        CAST(i.ChangedUtc AS date),
        'inclusion',
        i.ForloebCode,
        CASE WHEN i.IsIncluded = 1 THEN 'included' ELSE 'excluded' END,
        COUNT_BIG(*)
    FROM PLSP.PatientInkluderet_History AS i
    WHERE i.ChangedUtc >= @FromUtc AND i.ChangedUtc < @ToUtc
    GROUP BY CAST(i.ChangedUtc AS date), i.ForloebCode, i.IsIncluded;

    -- The values of the moment (Day NULL).
    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT NULL, 'aim', 'FLP_AIM', m.Metric, m.Value
    FROM (
        SELECT
            SUM(CASE WHEN a.Status = 0 THEN 1 ELSE 0 END) AS Pending,
            SUM(CASE WHEN a.Status = 1 THEN 1 ELSE 0 END) AS Queued,
            MIN(CASE WHEN a.Status = 0 THEN a.CreatedUtc END) AS OldestUtc
        FROM PLSP.FLP_AIM AS a
        WHERE a.Status IN (0, 1)
    ) AS s
    CROSS APPLY (VALUES
        ('pending', CAST(COALESCE(s.Pending, 0) AS bigint)),
        ('queued', CAST(COALESCE(s.Queued, 0) AS bigint)),
        (
            'oldest_pending_seconds',
            CASE WHEN s.OldestUtc < @AsOfUtc THEN DATEDIFF_BIG(MILLISECOND, s.OldestUtc, @AsOfUtc) / 1000 ELSE 0 END
        )
    ) AS m (Metric, Value)
    WHERE m.Value <> 0;

    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT NULL, 'aim', w.QueueName, w.Metric, COUNT_BIG(*)
    FROM (
        SELECT q.QueueName, 'waiting' AS Metric FROM Ops.QueueMessage AS q
        UNION ALL
        SELECT l.QueueName, 'dead_letters' FROM Ops.QueueDeadLetter AS l
    ) AS w
    GROUP BY w.QueueName, w.Metric;

    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT
        NULL,
        'conversion',
        'Patientvaerdier',
        CASE v.ConversionStatus WHEN 0 THEN 'unconverted' WHEN 2 THEN 'invalid' ELSE 'rejected' END,
        COUNT_BIG(*)
    FROM (
        SELECT w.ConversionStatus FROM PLSP.Patientvaerdier AS w WHERE w.ConversionStatus IN (0, 2, 3)
        UNION ALL
        SELECT CAST(0 AS tinyint) FROM PLSP.Patientvaerdier_Pending
    ) AS v
    GROUP BY v.ConversionStatus;

    INSERT INTO @Stats (Day, Section, Subject, Metric, Value)
    SELECT NULL, 'database', 'size', 'bytes', SUM(CAST(f.size AS bigint)) * 8192
    FROM sys.database_files AS f;

    SELECT s.Day, s.Section, s.Subject, s.Metric, s.Value
    FROM @Stats AS s
    ORDER BY s.Position;
END;
