-- Job.ops_retention_batch, version 3.
-- One batch of the Ops retention job (Job.ops_retention runs it through
-- Job.run_batched): removes the operations history older than the job's
-- settings (whole days to keep, Ops.Setting job ops_retention), so these tables
-- stop growing:
--   * JobRunDays (default 90): a run that started longer ago goes, with its
--     Ops.JobRunBatch rows;
--   * JobRunBatchDays (default 30): the progress rows of a run that started
--     longer ago go, the run's own row stays until JobRunDays;
--   * HeartbeatDays (default 7): the row of an orchestrator that has not beaten
--     for longer goes (a live one beats every 30 seconds);
--   * DeadLetterDays (default 90): an Ops.QueueDeadLetter row dead-lettered
--     longer ago goes (long enough to look into any failure the daily report named);
--   * CdaAccessLogDays (default 400): a PLSP.CdaAccessLog row (who read which
--     care plan, HentCDA / DDS) logged longer ago goes: an audit log, kept
--     for a year and a month so a citizen's or an auditor's question about the
--     past year can always be answered;
--   * JobSlotDays (default 30, at least 8): an Ops.JobSlot claim for a slot
--     longer ago goes (Job.job_slot_claim trims a job's claims older than 7
--     days only while that job is still claimed; a job taken out of the
--     timetable kept its claims forever). At least 8 so the retention never
--     removes a claim Job.job_slot_claim still reads (its 'first' rule);
--   * UploadDeadLetterDays (default 30, migration 0027): an Upload.DeadLetterDocument
--     row (a bulk upload's poison document, personal data, kept for an operator
--     to mend and send again) dead-lettered longer ago goes, at most
--     c_DeadLetterBatchMax (100) documents a batch: a document may hold up to
--     4,000 rows of JSON (about half a megabyte), so a batch of 4,000 of them
--     would be a transaction of gigabytes of WAL.
-- A run still 'running' is never touched, whatever its age (its job's next
-- start marks it abandoned; then it may go).
-- (Ops.QueueMessage has no done state: an acknowledged message is deleted by
-- its consumer, so there is nothing old to keep or remove.)
--
-- Version 3 (migration 0027): phase 5, the upload dead letters
-- (UploadDeadLetterDays), along IX_DeadLetterDocument_DeadLettered (migration
-- 0027); otherwise version 2.
-- Version 2: the dead letters, the CDA access log and the job slots, each with
-- its setting, and a keyset per table (below). A dry run counts each table's
-- old rows in one step (version 1 counted the heartbeats BatchSize at a time
-- from the same place, so a dry run never ended when BatchSize or more were old).
--
-- Keyset. The tables go one after the other, in phases: 0 the runs, 1 the
-- heartbeats, 2 the dead letters, 3 the CDA access log, 4 the job slots, 5 the
-- upload dead letters. p_Position
-- is phase * 10^15 + the phase's own position (NULL at the start):
--   * phase 0 walks Ops.JobRun's primary key upward from the last JobRunId
--     handled and takes the next runs with something to remove, as many as
--     fit in p_BatchSize rows (a run's row plus its batch rows); a run with
--     more batch rows than p_BatchSize alone is emptied over several batches
--     (the position stays on it). Phase 0's position is thus the JobRunId, as
--     in version 1;
--   * phase 1 removes at most p_BatchSize old heartbeats a batch (a few rows);
--   * phases 2 to 5 walk the table's time index (DeadLetteredUtc, AccessedUtc,
--     SlotUtc, DeadLetteredUtc; migration 0014 adds the first and the third,
--     migration 0027 the last) oldest first; the
--     position is the last time removed, in milliseconds since 1970-01-01
--     (0: from the start). The next batch starts at that time (inclusive:
--     rows of the same millisecond may remain), so no batch reads again over
--     the dead rows or ghost records the earlier ones left.
-- A batch that finds nothing in its phase goes on to the next phase in the same
-- call, so every batch removes something or ends the job (p_Done after phase 5).
-- Each DELETE removes at most p_BatchSize (<= 4000) rows of one table (phase 5:
-- at most c_DeadLetterBatchMax). Rows
-- another session holds locked are skipped (FOR UPDATE SKIP LOCKED), left for
-- the next run. p_Execute = 'N' only counts what the batch would remove; it
-- writes nothing (a dry batch may count more than p_BatchSize rows in one go).
-- Runs with the owner's rights; does not COMMIT (the runner does).
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine:
--   * No READPAST: FOR UPDATE SKIP LOCKED picks the rows, deleted by ctid.
--   * No transaction control here (Job.run_batched commits); the picks are arrays, not a table variable.
--   * A dry run counts locked rows too (MVCC reads them; T-SQL's READPAST count skips them).
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
    c_PhaseSize constant bigint := 1000000000000000;  -- 10^15: a phase's positions
    c_Phases constant integer := 6;  -- 0 to 5
    c_DeadLetterBatchMax constant integer := 100;  -- upload dead letters a batch: each up to 4,000 rows of JSON
    c_Epoch constant timestamp(3) := timestamp '1970-01-01 00:00:00';
    v_Errors text := '';
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
    v_Text varchar(400);
    v_JobRunDays integer;
    v_JobRunBatchDays integer;
    v_HeartbeatDays integer;
    v_DeadLetterDays integer;
    v_CdaAccessLogDays integer;
    v_JobSlotDays integer;
    v_UploadDeadLetterDays integer;
    v_RunCutoffUtc timestamp(3);
    v_BatchCutoffUtc timestamp(3);
    v_HeartbeatCutoffUtc timestamp(3);
    v_DeadLetterCutoffUtc timestamp(3);
    v_CdaAccessLogCutoffUtc timestamp(3);
    v_JobSlotCutoffUtc timestamp(3);
    v_UploadDeadLetterCutoffUtc timestamp(3);
    v_Phase integer;
    v_PhasePosition bigint;
    v_NextPosition bigint;
    v_PhaseBatch integer;
    v_FromId bigint;
    v_FromUtc timestamp(3);
    v_LastUtc timestamp(3);
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
    v_PhaseRows integer := 0;
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
    IF p_Position < 0 OR p_Position >= c_Phases * c_PhaseSize THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give the position the last batch returned, or NULL at the start. ';
    END IF;

    -- The job's settings: whole days to keep, per table (JobSlotDays at least 8).
    SELECT s.Value INTO v_Text FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'JobRunDays';
    IF v_Text ~ '^[0-9]{1,5}$' THEN
        v_JobRunDays := v_Text::integer;
    END IF;
    v_Text := NULL;
    SELECT s.Value INTO v_Text FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'JobRunBatchDays';
    IF v_Text ~ '^[0-9]{1,5}$' THEN
        v_JobRunBatchDays := v_Text::integer;
    END IF;
    v_Text := NULL;
    SELECT s.Value INTO v_Text FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'HeartbeatDays';
    IF v_Text ~ '^[0-9]{1,5}$' THEN
        v_HeartbeatDays := v_Text::integer;
    END IF;
    v_Text := NULL;
    SELECT s.Value INTO v_Text FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'DeadLetterDays';
    IF v_Text ~ '^[0-9]{1,5}$' THEN
        v_DeadLetterDays := v_Text::integer;
    END IF;
    v_Text := NULL;
    SELECT s.Value INTO v_Text FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'CdaAccessLogDays';
    IF v_Text ~ '^[0-9]{1,5}$' THEN
        v_CdaAccessLogDays := v_Text::integer;
    END IF;
    v_Text := NULL;
    SELECT s.Value INTO v_Text FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'JobSlotDays';
    IF v_Text ~ '^[0-9]{1,5}$' THEN
        v_JobSlotDays := v_Text::integer;
    END IF;
    v_Text := NULL;
    SELECT s.Value INTO v_Text FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'UploadDeadLetterDays';
    IF v_Text ~ '^[0-9]{1,5}$' THEN
        v_UploadDeadLetterDays := v_Text::integer;
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
    IF v_DeadLetterDays IS NULL OR v_DeadLetterDays < 1 OR v_DeadLetterDays > 36500 THEN
        v_Errors := v_Errors || 'Setting DeadLetterDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    END IF;
    IF v_CdaAccessLogDays IS NULL OR v_CdaAccessLogDays < 1 OR v_CdaAccessLogDays > 36500 THEN
        v_Errors := v_Errors || 'Setting CdaAccessLogDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    END IF;
    IF v_JobSlotDays IS NULL OR v_JobSlotDays < 8 OR v_JobSlotDays > 36500 THEN
        v_Errors := v_Errors || 'Setting JobSlotDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 8 to 36500. ';
    END IF;
    IF v_UploadDeadLetterDays IS NULL OR v_UploadDeadLetterDays < 1 OR v_UploadDeadLetterDays > 36500 THEN
        v_Errors := v_Errors || 'Setting UploadDeadLetterDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
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
    v_DeadLetterCutoffUtc := v_Now - make_interval(days => v_DeadLetterDays);
    v_CdaAccessLogCutoffUtc := v_Now - make_interval(days => v_CdaAccessLogDays);
    v_JobSlotCutoffUtc := v_Now - make_interval(days => v_JobSlotDays);
    v_UploadDeadLetterCutoffUtc := v_Now - make_interval(days => v_UploadDeadLetterDays);
    v_Phase := (coalesce(p_Position, 0) / c_PhaseSize)::integer;
    v_PhasePosition := coalesce(p_Position, 0) % c_PhaseSize;

    ----------------------------------------------------------------------------
    -- Do the work: the first phase with something old, from p_Position on
    ----------------------------------------------------------------------------
    WHILE v_Phase < c_Phases LOOP
        v_NextPosition := (v_Phase + 1) * c_PhaseSize;  -- unless the phase has more
        v_PhaseBatch := CASE WHEN v_Phase = 5 AND p_BatchSize > c_DeadLetterBatchMax THEN c_DeadLetterBatchMax ELSE p_BatchSize END;
        v_FromUtc := c_Epoch + v_PhasePosition * INTERVAL '1 millisecond';
        v_LastUtc := NULL;

        IF v_Phase = 0 THEN
            -- The runs: the next ones with something to remove (never a running
            -- one), with their batch rows and the running total of rows; those
            -- within p_BatchSize are this batch.
            v_FromId := v_PhasePosition;
            v_BatchRows := 0;
            v_RunRows := 0;
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
                -- The first run alone has more rows than a batch: its batch rows
                -- go over several batches, the keyset stays on it.
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

                    -- The run rows, checked again on the locked row: not running,
                    -- and no batch row left (one skipped above keeps its run).
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
            v_PhaseRows := v_BatchRows + v_RunRows;
            IF NOT v_WalkDone THEN
                v_NextPosition := coalesce(v_LastId, v_FromId);
            END IF;
            p_Note := concat(
                CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END,
                v_RunRows, ' runs, ', v_BatchRows, ' batch rows',
                CASE WHEN v_Found > 0 THEN concat(' (runs after ', v_FromId, ' to ', coalesce(v_LastId, v_FromId), ')') END,
                '; runs started before ', to_char(v_RunCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS'),
                ', batch rows of runs before ', to_char(v_BatchCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
            );

        ELSIF v_Phase = 1 THEN
            -- The heartbeats of orchestrators gone quiet (a few rows: no keyset).
            IF p_Execute = 'Y' THEN
                DELETE FROM Ops.Heartbeat AS h
                WHERE h.ctid = ANY (ARRAY(
                    SELECT x.ctid
                    FROM Ops.Heartbeat AS x
                    WHERE x.BeatUtc < v_HeartbeatCutoffUtc
                    LIMIT p_BatchSize
                    FOR UPDATE SKIP LOCKED
                ));
                GET DIAGNOSTICS v_PhaseRows = ROW_COUNT;
                IF v_PhaseRows = p_BatchSize THEN
                    v_NextPosition := v_Phase * c_PhaseSize;  -- more may be old: this phase again
                END IF;
            ELSE
                SELECT count(*) INTO v_PhaseRows FROM Ops.Heartbeat AS h WHERE h.BeatUtc < v_HeartbeatCutoffUtc;
            END IF;
            p_Note := concat(
                CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END, v_PhaseRows,
                ' heartbeats; beaten last before ', to_char(v_HeartbeatCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
            );

        ELSIF v_Phase = 2 THEN
            -- Dead letters, oldest first along IX_QueueDeadLetter_DeadLettered.
            IF p_Execute = 'Y' THEN
                WITH gone AS (
                    DELETE FROM Ops.QueueDeadLetter AS d
                    WHERE d.ctid = ANY (ARRAY(
                        SELECT x.ctid
                        FROM Ops.QueueDeadLetter AS x
                        WHERE x.DeadLetteredUtc >= v_FromUtc AND x.DeadLetteredUtc < v_DeadLetterCutoffUtc
                        ORDER BY x.DeadLetteredUtc
                        LIMIT p_BatchSize
                        FOR UPDATE SKIP LOCKED
                    ))
                    RETURNING d.DeadLetteredUtc
                )

                SELECT count(*), max(g.DeadLetteredUtc) INTO v_PhaseRows, v_LastUtc FROM gone AS g;
            ELSE
                SELECT count(*) INTO v_PhaseRows
                FROM Ops.QueueDeadLetter AS x
                WHERE x.DeadLetteredUtc >= v_FromUtc AND x.DeadLetteredUtc < v_DeadLetterCutoffUtc;
            END IF;
            p_Note := concat(
                CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END, v_PhaseRows,
                ' dead letters; dead-lettered before ', to_char(v_DeadLetterCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
            );

        ELSIF v_Phase = 3 THEN
            -- The CDA access log, oldest first along IX_CdaAccessLog_Accessed.
            IF p_Execute = 'Y' THEN
                WITH gone AS (
                    DELETE FROM PLSP.CdaAccessLog AS a
                    WHERE a.ctid = ANY (ARRAY(
                        SELECT x.ctid
                        FROM PLSP.CdaAccessLog AS x
                        WHERE x.AccessedUtc >= v_FromUtc AND x.AccessedUtc < v_CdaAccessLogCutoffUtc
                        ORDER BY x.AccessedUtc
                        LIMIT p_BatchSize
                        FOR UPDATE SKIP LOCKED
                    ))
                    RETURNING a.AccessedUtc
                )

                SELECT count(*), max(g.AccessedUtc) INTO v_PhaseRows, v_LastUtc FROM gone AS g;
            ELSE
                SELECT count(*) INTO v_PhaseRows
                FROM PLSP.CdaAccessLog AS x
                WHERE x.AccessedUtc >= v_FromUtc AND x.AccessedUtc < v_CdaAccessLogCutoffUtc;
            END IF;
            p_Note := concat(
                CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END, v_PhaseRows,
                ' CDA access log rows; logged before ', to_char(v_CdaAccessLogCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
            );

        ELSIF v_Phase = 4 THEN
            -- Job slot claims, oldest first along IX_JobSlot_Slot.
            IF p_Execute = 'Y' THEN
                WITH gone AS (
                    DELETE FROM Ops.JobSlot AS j
                    WHERE j.ctid = ANY (ARRAY(
                        SELECT x.ctid
                        FROM Ops.JobSlot AS x
                        WHERE x.SlotUtc >= v_FromUtc AND x.SlotUtc < v_JobSlotCutoffUtc
                        ORDER BY x.SlotUtc
                        LIMIT p_BatchSize
                        FOR UPDATE SKIP LOCKED
                    ))
                    RETURNING j.SlotUtc
                )

                SELECT count(*), max(g.SlotUtc) INTO v_PhaseRows, v_LastUtc FROM gone AS g;
            ELSE
                SELECT count(*) INTO v_PhaseRows
                FROM Ops.JobSlot AS x
                WHERE x.SlotUtc >= v_FromUtc AND x.SlotUtc < v_JobSlotCutoffUtc;
            END IF;
            p_Note := concat(
                CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END, v_PhaseRows,
                ' job slot claims; slots before ', to_char(v_JobSlotCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
            );

        ELSE
            -- Upload dead letters, oldest first along IX_DeadLetterDocument_DeadLettered,
            -- at most v_PhaseBatch (c_DeadLetterBatchMax) documents.
            IF p_Execute = 'Y' THEN
                WITH gone AS (
                    DELETE FROM Upload.DeadLetterDocument AS u
                    WHERE u.ctid = ANY (ARRAY(
                        SELECT x.ctid
                        FROM Upload.DeadLetterDocument AS x
                        WHERE x.DeadLetteredUtc >= v_FromUtc AND x.DeadLetteredUtc < v_UploadDeadLetterCutoffUtc
                        ORDER BY x.DeadLetteredUtc
                        LIMIT v_PhaseBatch
                        FOR UPDATE SKIP LOCKED
                    ))
                    RETURNING u.DeadLetteredUtc
                )

                SELECT count(*), max(g.DeadLetteredUtc) INTO v_PhaseRows, v_LastUtc FROM gone AS g;
            ELSE
                SELECT count(*) INTO v_PhaseRows
                FROM Upload.DeadLetterDocument AS x
                WHERE x.DeadLetteredUtc >= v_FromUtc AND x.DeadLetteredUtc < v_UploadDeadLetterCutoffUtc;
            END IF;
            p_Note := concat(
                CASE WHEN p_Execute = 'Y' THEN 'deleted ' ELSE 'would delete ' END, v_PhaseRows,
                ' upload dead letters; dead-lettered before ', to_char(v_UploadDeadLetterCutoffUtc, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
            );
        END IF;

        -- A time-ordered table with a full batch: the next batch starts at the
        -- last time removed.
        IF v_Phase >= 2 AND v_PhaseRows = v_PhaseBatch AND p_Execute = 'Y' THEN
            v_NextPosition := v_Phase * c_PhaseSize
                + (extract(EPOCH FROM v_LastUtc - c_Epoch) * 1000)::bigint;
        END IF;
        -- Something removed (or the runs' walk goes on): this batch is done.
        EXIT WHEN v_PhaseRows > 0 OR v_NextPosition < (v_Phase + 1) * c_PhaseSize;
        -- Nothing old here: the next phase, in this same call.
        v_Phase := v_Phase + 1;
        v_PhasePosition := 0;
    END LOOP;

    ----------------------------------------------------------------------------
    -- Report: where the next batch starts, and whether everything old is gone
    ----------------------------------------------------------------------------
    IF v_Phase >= c_Phases THEN
        p_Rows := 0;
        p_Position := c_Phases * c_PhaseSize - 1;
        p_Done := true;
        p_Note := 'nothing old left';
    ELSE
        p_Rows := v_PhaseRows;
        p_Done := v_NextPosition >= c_Phases * c_PhaseSize;
        p_Position := least(v_NextPosition, c_Phases * c_PhaseSize - 1);
        p_Note := left(concat('phase ', v_Phase, ': ', p_Note), 400);
    END IF;
END;
$$;
