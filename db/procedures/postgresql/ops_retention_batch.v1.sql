-- Job.ops_retention_batch, version 1.
-- One batch of the Ops retention job (Job.ops_retention runs it through
-- Job.run_batched): removes the operations history older than the job's
-- settings, so Ops.JobRun, Ops.JobRunBatch and Ops.Heartbeat stop growing:
--   * JobRunDays (default 90): a run that started longer ago goes, with its
--     Ops.JobRunBatch rows;
--   * JobRunBatchDays (default 30): the progress rows of a run that started
--     longer ago go, the run's own row stays until JobRunDays;
--   * HeartbeatDays (default 7): the row of an orchestrator that has not beaten
--     for longer goes (a live one beats every 30 seconds).
-- A run still 'running' is never touched, whatever its age (its job's next
-- start marks it abandoned; then it may go).
-- (Ops.QueueMessage has no done state: an acknowledged message is deleted by
-- its consumer, so there is nothing old to keep or remove.)
--
-- Keyset: p_Position is the last JobRunId handled (NULL at the start); a batch
-- walks Ops.JobRun's primary key upward from there and takes the next runs
-- with something to remove, as many as fit in p_BatchSize rows (a run's row
-- plus its batch rows). A run with more batch rows than p_BatchSize alone is
-- emptied over several batches (p_Position stays on it). When the walk finds
-- no more runs, the old heartbeats go (at most p_BatchSize) and the job is done.
-- Rows another session holds locked are skipped (FOR UPDATE SKIP LOCKED), left
-- for the next run. p_Execute = 'N' only counts what the batch would remove;
-- it writes nothing (a dry batch may count a large run's rows in one go).
-- Runs with the owner's rights; does not COMMIT (the runner does).
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: no
-- READPAST (FOR UPDATE SKIP LOCKED picks the rows, deleted by ctid) and no
-- transaction control here; the picks are arrays, not a table variable.
CREATE PROCEDURE Job.ops_retention_batch(
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
    v_JobRunDaysText varchar(400);
    v_JobRunBatchDaysText varchar(400);
    v_HeartbeatDaysText varchar(400);
    v_JobRunDays integer;
    v_JobRunBatchDays integer;
    v_HeartbeatDays integer;
    v_RunCutoffUtc timestamp(3);
    v_BatchCutoffUtc timestamp(3);
    v_HeartbeatCutoffUtc timestamp(3);
    v_FromId bigint := coalesce(p_Position, 0);
    v_Found integer;
    v_Picked integer;
    v_LastId bigint;
    v_FirstId bigint;
    v_FirstRows integer;
    v_Ids bigint[];
    v_GoingIds bigint[];
    v_PickedBatchRows integer;
    v_PickedRunRows integer;
    v_BatchRows integer := 0;
    v_RunRows integer := 0;
    v_HeartbeatRows integer := 0;
    v_WalkDone boolean;
BEGIN
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
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give the last JobRunId handled, or NULL at the start. ';
    END IF;

    -- The job's settings: whole days to keep, per table.
    SELECT s.Value INTO v_JobRunDaysText
    FROM Ops.Setting AS s
    WHERE s.JobName = 'ops_retention' AND s.Name = 'JobRunDays';
    SELECT s.Value INTO v_JobRunBatchDaysText
    FROM Ops.Setting AS s
    WHERE s.JobName = 'ops_retention' AND s.Name = 'JobRunBatchDays';
    SELECT s.Value INTO v_HeartbeatDaysText
    FROM Ops.Setting AS s
    WHERE s.JobName = 'ops_retention' AND s.Name = 'HeartbeatDays';
    IF v_JobRunDaysText ~ '^[0-9]{1,5}$' THEN
        v_JobRunDays := v_JobRunDaysText::integer;
    END IF;
    IF v_JobRunBatchDaysText ~ '^[0-9]{1,5}$' THEN
        v_JobRunBatchDays := v_JobRunBatchDaysText::integer;
    END IF;
    IF v_HeartbeatDaysText ~ '^[0-9]{1,5}$' THEN
        v_HeartbeatDays := v_HeartbeatDaysText::integer;
    END IF;
    IF v_JobRunDays IS NULL OR v_JobRunDays < 1 OR v_JobRunDays > 36500 THEN
        v_Errors := v_Errors || 'Setting JobRunDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    END IF;
    IF v_JobRunBatchDays IS NULL OR v_JobRunBatchDays < 1 OR v_JobRunBatchDays > 36500 THEN
        v_Errors := v_Errors || 'Setting JobRunBatchDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    END IF;
    IF v_HeartbeatDays IS NULL OR v_HeartbeatDays < 1 OR v_HeartbeatDays > 36500 THEN
        v_Errors := v_Errors || 'Setting HeartbeatDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    v_RunCutoffUtc := v_Now - make_interval(days => v_JobRunDays);
    v_BatchCutoffUtc := v_Now - make_interval(days => v_JobRunBatchDays);
    v_HeartbeatCutoffUtc := v_Now - make_interval(days => v_HeartbeatDays);

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    -- The next runs with something to remove (never a running one), with their
    -- batch rows and the running total of rows; those within p_BatchSize are
    -- this batch.
    WITH k AS (
        SELECT r.JobRunId, r.StartedUtc < v_RunCutoffUtc AS RunGoes
        FROM Ops.JobRun AS r
        WHERE
            r.JobRunId > v_FromId
            AND r.Status <> 'running'
            AND (
                r.StartedUtc < v_RunCutoffUtc
                OR (r.StartedUtc < v_BatchCutoffUtc AND EXISTS (
                    SELECT 1 FROM Ops.JobRunBatch AS e WHERE e.JobRunId = r.JobRunId
                ))
            )
        ORDER BY r.JobRunId
        LIMIT p_BatchSize
    ),

    c AS (
        SELECT
            k.JobRunId, k.RunGoes,
            (SELECT count(*) FROM Ops.JobRunBatch AS b WHERE b.JobRunId = k.JobRunId)::integer AS BatchRows
        FROM k
    ),

    t AS (
        SELECT
            c.JobRunId, c.RunGoes, c.BatchRows,
            sum(c.RunGoes::integer + c.BatchRows) OVER (ORDER BY c.JobRunId ROWS UNBOUNDED PRECEDING) AS Total
        FROM c
    )

    SELECT
        count(*),
        count(*) FILTER (WHERE t.Total <= p_BatchSize),
        max(t.JobRunId) FILTER (WHERE t.Total <= p_BatchSize),
        min(t.JobRunId),
        (array_agg(t.RunGoes::integer + t.BatchRows ORDER BY t.JobRunId))[1],
        array_agg(t.JobRunId) FILTER (WHERE t.Total <= p_BatchSize),
        array_agg(t.JobRunId) FILTER (WHERE t.Total <= p_BatchSize AND t.RunGoes),
        coalesce(sum(t.BatchRows) FILTER (WHERE t.Total <= p_BatchSize), 0),
        count(*) FILTER (WHERE t.Total <= p_BatchSize AND t.RunGoes)
    INTO v_Found, v_Picked, v_LastId, v_FirstId, v_FirstRows, v_Ids, v_GoingIds, v_PickedBatchRows, v_PickedRunRows
    FROM t;

    v_WalkDone := v_Found < p_BatchSize AND v_Picked = v_Found;

    IF v_Picked = 0 AND v_Found > 0 THEN
        -- The first run alone has more rows than a batch: its batch rows go
        -- over several batches, the keyset stays on it.
        IF p_Execute = 'Y' THEN
            DELETE FROM Ops.JobRunBatch AS b
            WHERE b.ctid = ANY (ARRAY(
                SELECT x.ctid
                FROM Ops.JobRunBatch AS x
                WHERE x.JobRunId = v_FirstId
                LIMIT p_BatchSize
                FOR UPDATE SKIP LOCKED
            ));
            GET DIAGNOSTICS v_BatchRows = ROW_COUNT;
            -- Every row of it locked by others: leave the run for the next run.
            v_LastId := CASE WHEN v_BatchRows = 0 THEN v_FirstId ELSE v_FromId END;
        ELSE
            v_BatchRows := v_FirstRows;
            v_LastId := v_FirstId;
        END IF;
    ELSIF v_Picked > 0 THEN
        IF p_Execute = 'Y' THEN
            DELETE FROM Ops.JobRunBatch AS b
            WHERE b.ctid = ANY (ARRAY(
                SELECT x.ctid
                FROM Ops.JobRunBatch AS x
                WHERE x.JobRunId = ANY (v_Ids)
                FOR UPDATE SKIP LOCKED
            ));
            GET DIAGNOSTICS v_BatchRows = ROW_COUNT;

            -- The run rows, checked again on the locked row: not running, and
            -- no batch row left (one skipped above keeps its run).
            DELETE FROM Ops.JobRun AS r
            WHERE r.ctid = ANY (ARRAY(
                SELECT x.ctid
                FROM Ops.JobRun AS x
                WHERE
                    x.JobRunId = ANY (v_GoingIds)
                    AND x.Status <> 'running'
                    AND x.StartedUtc < v_RunCutoffUtc
                    AND NOT EXISTS (SELECT 1 FROM Ops.JobRunBatch AS b WHERE b.JobRunId = x.JobRunId)
                FOR UPDATE SKIP LOCKED
            ))
            AND r.Status <> 'running';
            GET DIAGNOSTICS v_RunRows = ROW_COUNT;
        ELSE
            v_BatchRows := v_PickedBatchRows;
            v_RunRows := v_PickedRunRows;
        END IF;
    END IF;

    -- The walk is over: the heartbeats of orchestrators gone quiet.
    IF v_WalkDone THEN
        IF p_Execute = 'Y' THEN
            DELETE FROM Ops.Heartbeat AS h
            WHERE h.ctid = ANY (ARRAY(
                SELECT x.ctid
                FROM Ops.Heartbeat AS x
                WHERE x.BeatUtc < v_HeartbeatCutoffUtc
                LIMIT p_BatchSize
                FOR UPDATE SKIP LOCKED
            ));
            GET DIAGNOSTICS v_HeartbeatRows = ROW_COUNT;
        ELSE
            SELECT count(*) INTO v_HeartbeatRows
            FROM (
                SELECT 1
                FROM Ops.Heartbeat AS h
                WHERE h.BeatUtc < v_HeartbeatCutoffUtc
                LIMIT p_BatchSize
            ) AS hb;
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Report: where the next batch starts, and whether everything old is gone
    ----------------------------------------------------------------------------
    p_Rows := v_BatchRows + v_RunRows + v_HeartbeatRows;
    p_Position := coalesce(v_LastId, p_Position);
    p_Done := v_WalkDone AND v_HeartbeatRows < p_BatchSize;
    p_Note := left(concat(
        CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END,
        v_RunRows, ' runs, ', v_BatchRows, ' batch rows',
        CASE WHEN v_Found > 0 THEN concat(' (runs after ', v_FromId, ' to ', coalesce(v_LastId, v_FromId), ')') END,
        CASE WHEN v_WalkDone THEN concat(', ', v_HeartbeatRows, ' heartbeats') END,
        '; runs started before ', to_char(v_RunCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS'),
        ', batch rows of runs before ', to_char(v_BatchCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
    ), 400);
END;
$$;
