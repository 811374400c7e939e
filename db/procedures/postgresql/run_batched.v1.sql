-- Job.run_batched, version 1.
-- The engine every batched job runs on (archive, purges, clean-ups). It calls
-- the job's batch procedure again and again, each call one short transaction,
-- until the procedure says it is done, and in between:
--   * reads the job's settings (Job.batch_settings_get) before every batch;
--   * stops starting batches after the time limit;
--   * pauses while Job.health_check finds the database busy, stays paused for
--     HealthHoldSeconds after the last busy look, and stops cleanly after
--     HealthMaxPauseSeconds in one pause;
--   * sizes the next batch so it takes about BatchTargetMs (smoothed, at most
--     20% larger a step, between BatchSizeMin and BatchSizeMax);
--   * sleeps SleepFactor times the batch's duration, leaving room for others;
--   * logs every batch in Ops.JobRunBatch.
-- A cheap probe comes first: with nothing to do a run costs milliseconds.
-- p_Execute = 'N' is a dry run: the batch procedure only counts what it would
-- do, and nothing is written, not even the job-run row.
--
-- A batch procedure has this contract:
--   Job.<job>_batch(p_BatchSize integer, p_Execute char(1),
--       INOUT p_Position bigint (keyset position, NULL at the start),
--       INOUT p_Rows integer, INOUT p_Done boolean, INOUT p_Note varchar(400))
--
-- PostgreSQL differences from the T-SQL twin, both forced by the engine:
--   * It COMMITs after each step, so it must be CALLed outside a transaction
--     block (autocommit), and it runs with the caller's rights (a SECURITY
--     DEFINER procedure cannot commit); it touches no table itself, only Job
--     procedures, so the orchestrator role needs no table rights.
--   * A block that COMMITs cannot catch errors, so there is no CATCH: after a
--     failure the caller calls Job.job_run_fail (the orchestrator does), or
--     the next run marks the row abandoned; the lock goes with the session.
CREATE PROCEDURE Job.run_batched(
    p_JobName varchar(100),
    p_BatchProcedure varchar(256),
    p_Execute char(1) DEFAULT 'Y',
    p_TimeLimitSeconds integer DEFAULT NULL,
    p_TriggeredBy varchar(20) DEFAULT 'manual',
    p_Host varchar(128) DEFAULT NULL,
    INOUT p_JobRunId bigint DEFAULT NULL,
    INOUT p_Result varchar(20) DEFAULT NULL,
    INOUT p_RowsAffected bigint DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_Errors text := '';
    v_Parameters varchar(4000);
    v_Message varchar(4000);
    v_StopReason varchar(400);
    v_RunStartedUtc timestamp(3) := clock_timestamp() AT TIME ZONE 'UTC';
    v_BatchStartedUtc timestamp(3);
    v_PauseStartedUtc timestamp(3);
    v_LastBusyUtc timestamp(3);
    v_PausedMs integer := 0;
    v_BatchNo integer := 0;
    v_BatchSize integer;
    v_NextBatchSize integer;
    v_BatchRows integer;
    v_BatchMs integer;
    v_SmoothedMs numeric(18, 3);
    v_SleepMs integer;
    v_Position bigint;
    v_ProbePosition bigint;
    v_ProbeRows integer;
    v_Done boolean := false;
    v_Note varchar(400);
    v_Busy boolean;
    v_HealthReason varchar(400);
    v_BatchProcedure regproc;
    v_BatchTargetMs integer;
    v_BatchSizeStart integer;
    v_BatchSizeMin integer;
    v_BatchSizeMax integer;
    v_SleepFactor numeric(9, 3);
    v_SettingTimeLimitSeconds integer;
    v_HealthMaxActive integer;
    v_HealthMaxLockWaits integer;
    v_HealthHoldSeconds integer;
    v_HealthMaxPauseSeconds integer;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: CALLed outside a transaction block, or the first
    -- COMMIT fails with "invalid transaction termination".
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name in lower-case letters, digits and _. ';
    END IF;
    SELECT p.oid::regproc INTO v_BatchProcedure
    FROM pg_proc AS p
    INNER JOIN pg_namespace AS n ON p.pronamespace = n.oid
    WHERE p.oid = to_regproc(p_BatchProcedure) AND p.prokind = 'p' AND n.nspname = 'job';
    IF v_BatchProcedure IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchProcedure is not supported: name a procedure in schema Job. ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (run) or N (dry run). ';
    END IF;
    IF p_TimeLimitSeconds <= 0 OR p_TimeLimitSeconds > 604800 THEN
        v_Errors := v_Errors || 'The value for the parameter p_TimeLimitSeconds is not supported: give 1 to 604800 seconds (7 days), or NULL for the setting. ';
    END IF;
    IF p_TriggeredBy IS NULL OR p_TriggeredBy NOT IN ('orchestrator', 'agent', 'manual', 'demo', 'test') THEN
        v_Errors := v_Errors || 'The value for the parameter p_TriggeredBy is not supported: use orchestrator, agent, manual, demo or test. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    -- Outputs start empty: a dry run returns no run id even if one was passed in.
    p_JobRunId := NULL;
    p_Result := NULL;
    p_RowsAffected := 0;
    v_Parameters := concat(
        'p_Execute = ''', p_Execute, ''', p_TimeLimitSeconds = ', coalesce(p_TimeLimitSeconds::text, 'NULL')
    );

    ----------------------------------------------------------------------------
    -- Log start (a dry run writes nothing)
    ----------------------------------------------------------------------------
    IF p_Execute = 'Y' THEN
        CALL Job.job_run_start(p_JobName, p_TriggeredBy, p_Host, v_Parameters, p_JobRunId, p_Result);
        COMMIT;
        IF p_Result = 'already_running' THEN
            RETURN;
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Probe: is there anything to do at all?
    ----------------------------------------------------------------------------
    EXECUTE format('CALL %s($1, $2, $3, NULL, NULL, NULL)', v_BatchProcedure)
    INTO v_ProbePosition, v_ProbeRows, v_Done, v_Note
    USING 1, 'N', v_ProbePosition;
    COMMIT;  -- the probe holds nothing into the batches (on SQL Server it is its own statement)
    v_Done := v_ProbeRows = 0;
    IF v_Done THEN
        v_StopReason := 'nothing to do';
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work, batch by batch
    ----------------------------------------------------------------------------
    WHILE NOT v_Done LOOP
        -- Settings are read before every batch (after the run row, so a
        -- malformed one fails a logged run).
        CALL Job.batch_settings_get(
            p_JobName,
            v_BatchTargetMs, v_BatchSizeStart, v_BatchSizeMin, v_BatchSizeMax, v_SleepFactor,
            v_SettingTimeLimitSeconds, v_HealthMaxActive, v_HealthMaxLockWaits, v_HealthHoldSeconds, v_HealthMaxPauseSeconds
        );
        v_BatchSize := CASE
            WHEN v_BatchSize IS NULL THEN v_BatchSizeStart
            WHEN v_BatchSize < v_BatchSizeMin THEN v_BatchSizeMin
            WHEN v_BatchSize > v_BatchSizeMax THEN v_BatchSizeMax
            ELSE v_BatchSize
        END;

        -- Time limit: no new batch after it.
        IF extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_RunStartedUtc) * 1000
            >= 1000 * coalesce(p_TimeLimitSeconds, v_SettingTimeLimitSeconds) THEN
            v_StopReason := 'time limit reached';
            EXIT;
        END IF;

        -- Health gate: wait while busy, and for the hold time after the last busy look.
        CALL Job.health_check(v_HealthMaxActive, v_HealthMaxLockWaits, v_Busy, v_HealthReason);
        v_PauseStartedUtc := NULL;
        v_LastBusyUtc := CASE WHEN v_Busy THEN clock_timestamp() AT TIME ZONE 'UTC' END;
        WHILE v_LastBusyUtc IS NOT NULL
            AND (v_Busy OR extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_LastBusyUtc) * 1000
            < 1000 * v_HealthHoldSeconds) LOOP
            IF extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_RunStartedUtc) * 1000
                >= 1000 * coalesce(p_TimeLimitSeconds, v_SettingTimeLimitSeconds) THEN
                v_StopReason := 'time limit reached';
                EXIT;
            END IF;
            IF v_PauseStartedUtc IS NULL THEN
                v_PauseStartedUtc := clock_timestamp() AT TIME ZONE 'UTC';
                RAISE NOTICE '%: paused, database busy: %', p_JobName, v_HealthReason;
            END IF;
            IF extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_PauseStartedUtc) * 1000
                >= 1000 * v_HealthMaxPauseSeconds THEN
                v_StopReason := 'database busy too long: ' || v_HealthReason;
                EXIT;
            END IF;
            PERFORM pg_sleep(0.25);
            COMMIT;  -- hold no snapshot while waiting
            CALL Job.health_check(v_HealthMaxActive, v_HealthMaxLockWaits, v_Busy, v_HealthReason);
            IF v_Busy THEN
                v_LastBusyUtc := clock_timestamp() AT TIME ZONE 'UTC';
            END IF;
        END LOOP;
        IF v_PauseStartedUtc IS NOT NULL THEN
            v_PausedMs := v_PausedMs
                + (extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_PauseStartedUtc) * 1000)::integer;
        END IF;
        IF v_StopReason IS NOT NULL THEN
            EXIT;
        END IF;

        -- One batch, committed on its own.
        v_BatchNo := v_BatchNo + 1;
        v_BatchStartedUtc := clock_timestamp() AT TIME ZONE 'UTC';
        EXECUTE format('CALL %s($1, $2, $3, NULL, NULL, NULL)', v_BatchProcedure)
        INTO v_Position, v_BatchRows, v_Done, v_Note
        USING v_BatchSize, p_Execute, v_Position;
        COMMIT;
        -- trunc: CAST to int truncates on SQL Server, ::integer would round.
        v_BatchMs := trunc(extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_BatchStartedUtc) * 1000)::integer;
        p_RowsAffected := p_RowsAffected + v_BatchRows;

        IF p_Execute = 'Y' THEN
            CALL Job.job_batch_log(p_JobRunId, v_BatchNo, v_BatchStartedUtc, v_BatchMs, v_BatchSize, v_BatchRows, v_Note);
            COMMIT;
        ELSE
            RAISE NOTICE '%: dry run batch %: % rows', p_JobName, v_BatchNo, v_BatchRows;
        END IF;

        -- Next batch size: aim at the target time, grow at most 20% a step.
        v_SmoothedMs := CASE
            WHEN v_SmoothedMs IS NULL THEN v_BatchMs
            ELSE 0.7 * v_SmoothedMs + 0.3 * v_BatchMs
        END;
        v_NextBatchSize := trunc(v_BatchSize * v_BatchTargetMs / CASE WHEN v_SmoothedMs < 1 THEN 1 ELSE v_SmoothedMs END)::integer;
        IF v_NextBatchSize > v_BatchSize * 1.2 THEN
            v_NextBatchSize := trunc(v_BatchSize * 1.2)::integer;
        END IF;
        v_BatchSize := CASE
            WHEN v_NextBatchSize < v_BatchSizeMin THEN v_BatchSizeMin
            WHEN v_NextBatchSize > v_BatchSizeMax THEN v_BatchSizeMax
            ELSE v_NextBatchSize
        END;

        -- Leave room for other work.
        v_SleepMs := trunc(least(v_BatchMs * v_SleepFactor, 60000))::integer;
        IF NOT v_Done AND v_SleepMs > 0 THEN
            PERFORM pg_sleep(v_SleepMs / 1000.0);
        END IF;
    END LOOP;

    ----------------------------------------------------------------------------
    -- Log end
    ----------------------------------------------------------------------------
    p_Result := CASE
        WHEN p_Execute = 'N' THEN 'dry_run'
        WHEN v_StopReason IS NULL OR v_StopReason = 'nothing to do' THEN 'succeeded'
        ELSE 'stopped'
    END;
    v_Message := concat(
        v_BatchNo, ' batches',
        CASE WHEN v_PausedMs > 0 THEN concat('; paused ', v_PausedMs / 1000, ' s for a busy database') END,
        '; ' || v_StopReason
    );
    IF p_Execute = 'Y' THEN
        CALL Job.job_run_finish(p_JobRunId, p_Result, p_RowsAffected, v_Message);
        COMMIT;
    END IF;
END;
$$;
