-- Job.run_batched, version 5.
-- Version 5 (migration 0025): a failed run is ended inside a block of its own
-- that catches a failure of Job.job_run_finish, so the error that failed the
-- run is the one the caller gets even when ending the run fails too (version
-- 4 raised job_run_finish's error instead). job_run_finish version 4 has then
-- released the lock; the run stays 'running' and the job's next start marks it
-- abandoned. Parameters and results are those of version 4.
-- Version 4: p_TriggeredBy may be 'pg_cron' (passed on to Job.job_run_start
-- version 3, migration 0017); nothing else changed from version 3.
-- The engine every batched job runs on (archive, purges, clean-ups, Ops
-- retention). It calls the job's batch procedure, Job.<job>_batch (derived from
-- the job's name, so one job's batch never runs under another job's lock and
-- settings), again and again, each call one short transaction, until the
-- procedure says it is done, and in between:
--   * reads the job's settings (Job.batch_settings_get) before every batch;
--   * stops starting batches after the time limit;
--   * pauses while Job.health_check finds the database busy, stays paused for
--     HealthHoldSeconds after the last busy look, and stops cleanly after
--     HealthMaxPauseSeconds in one pause;
--   * bounds every lock wait of the batch to LockTimeoutMs: a batch that hits
--     it (55P03 lock_not_available) is rolled back and its rows are left for the
--     next batch: counted, noted in the batch row and the run message, never a
--     failed run;
--   * retries a batch chosen as deadlock victim (40P01) up to DeadlockRetries
--     times in a row, then stops the run cleanly (stopped, with a message);
--   * sizes the next batch by time and by time efficiency (below);
--   * sleeps SleepFactor times the batch's duration, leaving room for others;
--   * logs every batch in Ops.JobRunBatch.
-- A cheap probe comes first: with nothing to do a run costs milliseconds.
-- Version 3 (migration 0014): the probe is bounded and handled like a batch.
-- Version 2 ran it at the session's lock_timeout (0, wait forever, unless the
-- batch procedure set its own) and outside the 55P03 / 40P01 handling, so a
-- table lock held elsewhere could hold the run at its probe, and a deadlock
-- there failed the run. Now the settings are read before the probe, the probe
-- runs under LockTimeoutMs, and a probe that hits the lock timeout or is chosen
-- as deadlock victim counts as "there may be work": the batches follow, each
-- bounded, counted and retried as before. Parameters and results are those of
-- version 2. Also version 3: the progress row (Job.job_batch_log) commits
-- without waiting for its WAL flush (synchronous_commit off for that
-- transaction only), one disk flush less per batch; a crash can lose the last
-- progress rows of a run that is then marked abandoned anyway (the run row's
-- start and end stay durable).
-- p_Execute = 'N' is a dry run: the batch procedure only counts what it would
-- do, and nothing is written, not even the job-run row.
--
-- Batch size. The next batch aims at a target duration: BatchTargetMs, raised
-- when the fixed cost around each batch (settings, health check, progress row,
-- commits) is a large share of the engine's working time, so that at least
-- TimeEfficiencyMin of it moves rows (GitLab's batched background migrations
-- size batches by the same "time efficiency"), but raised never above BatchMaxMs, the
-- longest transaction a batch may be. The duration and the overhead are
-- smoothed (0.7 old, 0.3 new); a batch grows at most 20% a step, between
-- BatchSizeMin and BatchSizeMax (at most 4,000: see Job.batch_settings_get).
-- A slow machine (larger fixed cost) thus gets larger batches, a fast one keeps
-- short ones: the share of time spent moving rows, not the batch count, holds.
--
-- A batch procedure has this contract:
--   Job.<job>_batch(p_BatchSize integer, p_Execute char(1),
--       INOUT p_Position bigint (keyset position, NULL at the start),
--       INOUT p_Rows integer, INOUT p_Done boolean, INOUT p_Note varchar(400))
-- It must not set lock_timeout itself (no SET lock_timeout clause): it inherits
-- the engine's, which is LockTimeoutMs.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * CALLed outside a transaction block (autocommit) and with the caller's rights: it COMMITs, so it cannot be SECURITY DEFINER; it touches no table itself, only Job procedures.
--   * Errors are caught in sub-blocks around each step (a block with an EXCEPTION clause cannot COMMIT, so the COMMITs stand outside them); a failure finishes the run as failed with its error, commits that, and raises the error again: a failed run ends failed whoever started it (the orchestrator, pg_cron, psql), as the T-SQL CATCH block does.
--   * No DEADLOCK_PRIORITY: PostgreSQL picks as victim the session whose deadlock check runs first; the retry is the same.
--   * LockTimeoutMs is set with set_config(..., true) after the COMMIT before each batch: it lasts for that batch's transaction only (T-SQL: SET LOCK_TIMEOUT, undone when the procedure returns).
--   * The session's application_name is 'flp-job:<job>' while it runs (restored at the end), so Job.health_check can leave out job sessions sleeping between batches (T-SQL: their WAITFOR is left out).
--   * The progress row commits with synchronous_commit off (version 3); the T-SQL twin commits it durably (delayed durability needs the database option ALLOW_DELAYED_DURABILITY, a DBA's choice).
--   * Every sleep (pg_sleep) comes right after a COMMIT and every batch right after one, so no transaction stays open while sleeping and each batch's now() is its own start.
CREATE PROCEDURE Job.run_batched(
    p_JobName varchar(101),
    p_Execute char(1) DEFAULT 'Y',
    p_TimeLimitSeconds integer DEFAULT NULL,
    p_TriggeredBy varchar(20) DEFAULT 'manual',
    p_Host varchar(129) DEFAULT NULL,
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
    v_CycleStartedUtc timestamp(3);
    v_BatchStartedUtc timestamp(3);
    v_PauseStartedUtc timestamp(3);
    v_LastBusyUtc timestamp(3);
    v_PausedMs integer := 0;
    v_CyclePausedMs integer;
    v_BatchNo integer := 0;
    v_BatchSize integer;
    v_NextBatchSize integer;
    v_BatchRows integer;
    v_BatchMs integer;
    v_CycleMs integer;
    v_SmoothedMs numeric(18, 3);
    v_SmoothedOverheadMs numeric(18, 3);
    v_TargetMs numeric(18, 3);
    v_SleepMs integer;
    v_Position bigint;
    v_ProbePosition bigint;
    v_ProbeRows integer;
    v_Done boolean := false;
    v_Note varchar(400);
    v_Outcome varchar(20);
    v_LockTimeouts integer := 0;
    v_DeadlocksInARow integer := 0;
    v_DeadlockRetried integer := 0;
    v_Busy boolean;
    v_HealthReason varchar(400);
    v_BatchProcedure regproc;
    v_AppName text := current_setting('application_name');
    v_ErrState text;
    v_ErrMessage text;
    v_ErrDetail text;
    v_ErrHint text;
    v_ErrContext text;
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
    v_LockTimeoutMs integer;
    v_DeadlockRetries integer;
    v_TimeEfficiencyMin numeric(9, 3);
    v_BatchMaxMs integer;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: CALLed outside a transaction block, or the first
    -- COMMIT fails with "invalid transaction termination".
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' OR length(p_JobName) > 100 THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name (lower-case letters, digits, _; up to 100). ';
    ELSE
        SELECT p.oid::regproc INTO v_BatchProcedure
        FROM pg_proc AS p
        INNER JOIN pg_namespace AS n ON p.pronamespace = n.oid
        WHERE n.nspname = 'job' AND p.proname = p_JobName || '_batch' AND p.prokind = 'p';
        IF v_BatchProcedure IS NULL THEN
            v_Errors := v_Errors || format('The value for the parameter p_JobName is not supported: there is no batch procedure Job.%s_batch. ', p_JobName);
        END IF;
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (run) or N (dry run). ';
    END IF;
    IF p_TimeLimitSeconds <= 0 OR p_TimeLimitSeconds > 604800 THEN
        v_Errors := v_Errors || 'The value for the parameter p_TimeLimitSeconds is not supported: give 1 to 604800 seconds (7 days), or NULL for the setting. ';
    END IF;
    IF p_TriggeredBy IS NULL OR p_TriggeredBy NOT IN ('orchestrator', 'agent', 'pg_cron', 'manual', 'demo', 'test') THEN
        v_Errors := v_Errors || 'The value for the parameter p_TriggeredBy is not supported: use orchestrator, agent, pg_cron, manual, demo or test. ';
    END IF;
    IF length(p_Host) > 128 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Host is not supported: give at most 128 characters. ';
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
    PERFORM set_config('application_name', 'flp-job:' || p_JobName, false);

    ----------------------------------------------------------------------------
    -- Probe: is there anything to do at all?
    ----------------------------------------------------------------------------
    -- The settings first: the probe waits for a lock at most LockTimeoutMs.
    BEGIN
        CALL Job.batch_settings_get(
            p_JobName,
            v_BatchTargetMs, v_BatchSizeStart, v_BatchSizeMin, v_BatchSizeMax, v_SleepFactor,
            v_SettingTimeLimitSeconds, v_HealthMaxActive, v_HealthMaxLockWaits, v_HealthHoldSeconds,
            v_HealthMaxPauseSeconds, v_LockTimeoutMs, v_DeadlockRetries, v_TimeEfficiencyMin, v_BatchMaxMs
        );
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_ErrState = RETURNED_SQLSTATE, v_ErrMessage = MESSAGE_TEXT,
            v_ErrDetail = PG_EXCEPTION_DETAIL, v_ErrHint = PG_EXCEPTION_HINT, v_ErrContext = PG_EXCEPTION_CONTEXT;
    END;
    IF v_ErrState IS NULL THEN
        COMMIT;
        PERFORM set_config('lock_timeout', v_LockTimeoutMs || 'ms', true);
        BEGIN
            EXECUTE format('CALL %s($1, $2, $3, NULL, NULL, NULL)', v_BatchProcedure)
            INTO v_ProbePosition, v_ProbeRows, v_Done, v_Note
            USING 1, 'N', v_ProbePosition;
        EXCEPTION
            WHEN lock_not_available OR deadlock_detected THEN
                -- There may be work; the batches find out.
                v_ProbeRows := NULL;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_ErrState = RETURNED_SQLSTATE, v_ErrMessage = MESSAGE_TEXT,
                    v_ErrDetail = PG_EXCEPTION_DETAIL, v_ErrHint = PG_EXCEPTION_HINT, v_ErrContext = PG_EXCEPTION_CONTEXT;
        END;
    END IF;
    COMMIT;  -- the probe holds nothing into the batches (on SQL Server it is its own statement)
    IF v_ErrState IS NULL THEN
        v_Done := coalesce(v_ProbeRows = 0, false);
        IF v_Done THEN
            v_StopReason := 'nothing to do';
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work, batch by batch
    ----------------------------------------------------------------------------
    WHILE v_ErrState IS NULL AND NOT v_Done LOOP
        COMMIT;
        v_CycleStartedUtc := clock_timestamp() AT TIME ZONE 'UTC';
        v_CyclePausedMs := 0;
        -- Settings are read before every batch (after the run row, so a
        -- malformed one fails a logged run).
        BEGIN
            CALL Job.batch_settings_get(
                p_JobName,
                v_BatchTargetMs, v_BatchSizeStart, v_BatchSizeMin, v_BatchSizeMax, v_SleepFactor,
                v_SettingTimeLimitSeconds, v_HealthMaxActive, v_HealthMaxLockWaits, v_HealthHoldSeconds,
                v_HealthMaxPauseSeconds, v_LockTimeoutMs, v_DeadlockRetries, v_TimeEfficiencyMin, v_BatchMaxMs
            );
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_ErrState = RETURNED_SQLSTATE, v_ErrMessage = MESSAGE_TEXT,
                v_ErrDetail = PG_EXCEPTION_DETAIL, v_ErrHint = PG_EXCEPTION_HINT, v_ErrContext = PG_EXCEPTION_CONTEXT;
        END;
        EXIT WHEN v_ErrState IS NOT NULL;
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
        BEGIN
            CALL Job.health_check(v_HealthMaxActive, v_HealthMaxLockWaits, v_Busy, v_HealthReason);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_ErrState = RETURNED_SQLSTATE, v_ErrMessage = MESSAGE_TEXT,
                v_ErrDetail = PG_EXCEPTION_DETAIL, v_ErrHint = PG_EXCEPTION_HINT, v_ErrContext = PG_EXCEPTION_CONTEXT;
        END;
        EXIT WHEN v_ErrState IS NOT NULL;
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
            COMMIT;  -- hold no transaction while waiting
            PERFORM pg_sleep(0.25);
            BEGIN
                CALL Job.health_check(v_HealthMaxActive, v_HealthMaxLockWaits, v_Busy, v_HealthReason);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_ErrState = RETURNED_SQLSTATE, v_ErrMessage = MESSAGE_TEXT,
                    v_ErrDetail = PG_EXCEPTION_DETAIL, v_ErrHint = PG_EXCEPTION_HINT, v_ErrContext = PG_EXCEPTION_CONTEXT;
            END;
            EXIT WHEN v_ErrState IS NOT NULL;
            IF v_Busy THEN
                v_LastBusyUtc := clock_timestamp() AT TIME ZONE 'UTC';
            END IF;
        END LOOP;
        IF v_PauseStartedUtc IS NOT NULL THEN
            v_CyclePausedMs := (extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_PauseStartedUtc) * 1000)::integer;
            v_PausedMs := v_PausedMs + v_CyclePausedMs;
        END IF;
        EXIT WHEN v_ErrState IS NOT NULL OR v_StopReason IS NOT NULL;

        -- One batch, in its own transaction started right here (so its now() is
        -- the batch's start), its lock waits bounded by LockTimeoutMs.
        COMMIT;
        v_BatchNo := v_BatchNo + 1;
        v_BatchStartedUtc := clock_timestamp() AT TIME ZONE 'UTC';
        PERFORM set_config('lock_timeout', v_LockTimeoutMs || 'ms', true);
        v_Outcome := 'done';
        BEGIN
            EXECUTE format('CALL %s($1, $2, $3, NULL, NULL, NULL)', v_BatchProcedure)
            INTO v_Position, v_BatchRows, v_Done, v_Note
            USING v_BatchSize, p_Execute, v_Position;
        EXCEPTION
            WHEN lock_not_available THEN
                v_Outcome := 'lock_timeout';
            WHEN deadlock_detected THEN
                v_Outcome := 'deadlock';
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_ErrState = RETURNED_SQLSTATE, v_ErrMessage = MESSAGE_TEXT,
                    v_ErrDetail = PG_EXCEPTION_DETAIL, v_ErrHint = PG_EXCEPTION_HINT, v_ErrContext = PG_EXCEPTION_CONTEXT;
        END;
        COMMIT;
        -- trunc: CAST to int truncates on SQL Server, ::integer would round.
        v_BatchMs := trunc(extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_BatchStartedUtc) * 1000)::integer;
        EXIT WHEN v_ErrState IS NOT NULL;
        IF v_Outcome = 'done' THEN
            v_DeadlocksInARow := 0;
        ELSE
            -- Rolled back whole: nothing moved, the position stays, the next batch tries again.
            v_BatchRows := 0;
            v_Done := false;
            IF v_Outcome = 'lock_timeout' THEN
                v_LockTimeouts := v_LockTimeouts + 1;
                v_Note := format('lock wait over %s ms (LockTimeoutMs): rolled back, left for the next batch', v_LockTimeoutMs);
            ELSE
                v_DeadlocksInARow := v_DeadlocksInARow + 1;
                IF v_DeadlocksInARow <= v_DeadlockRetries THEN
                    v_DeadlockRetried := v_DeadlockRetried + 1;
                END IF;
                v_Note := format('chosen as deadlock victim: rolled back, %s', CASE
                    WHEN v_DeadlocksInARow > v_DeadlockRetries THEN 'no retry left (DeadlockRetries ' || v_DeadlockRetries || ')'
                    ELSE format('retry %s of %s', v_DeadlocksInARow, v_DeadlockRetries)
                END);
            END IF;
        END IF;
        p_RowsAffected := p_RowsAffected + v_BatchRows;

        IF p_Execute = 'Y' THEN
            -- The progress row's commit does not wait for the WAL flush (this
            -- transaction only): one disk flush less per batch.
            PERFORM set_config('synchronous_commit', 'off', true);
            BEGIN
                CALL Job.job_batch_log(p_JobRunId, v_BatchNo, v_BatchStartedUtc, v_BatchMs, v_BatchSize, v_BatchRows, v_Note);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_ErrState = RETURNED_SQLSTATE, v_ErrMessage = MESSAGE_TEXT,
                    v_ErrDetail = PG_EXCEPTION_DETAIL, v_ErrHint = PG_EXCEPTION_HINT, v_ErrContext = PG_EXCEPTION_CONTEXT;
            END;
            COMMIT;
            EXIT WHEN v_ErrState IS NOT NULL;
        ELSE
            RAISE NOTICE '%: dry run batch %: % rows', p_JobName, v_BatchNo, v_BatchRows;
        END IF;
        IF v_DeadlocksInARow > v_DeadlockRetries THEN
            v_StopReason := format('chosen as deadlock victim %s times in a row (DeadlockRetries %s)', v_DeadlocksInARow, v_DeadlockRetries);
            EXIT;
        END IF;

        -- Next batch size (a rolled-back batch says nothing about it): aim at
        -- the target time, raised for time efficiency, grow at most 20% a step.
        IF v_Outcome = 'done' THEN
            v_CycleMs := trunc(extract(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC') - v_CycleStartedUtc) * 1000)::integer
                - v_CyclePausedMs;
            v_SmoothedMs := CASE
                WHEN v_SmoothedMs IS NULL THEN v_BatchMs
                ELSE 0.7 * v_SmoothedMs + 0.3 * v_BatchMs
            END;
            v_SmoothedOverheadMs := CASE
                WHEN v_SmoothedOverheadMs IS NULL THEN greatest(v_CycleMs - v_BatchMs, 0)
                ELSE 0.7 * v_SmoothedOverheadMs + 0.3 * greatest(v_CycleMs - v_BatchMs, 0)
            END;
            -- The duration that keeps the overhead's share at 1 - TimeEfficiencyMin,
            -- at most BatchMaxMs; never below BatchTargetMs.
            v_TargetMs := greatest(
                v_BatchTargetMs,
                least(v_BatchMaxMs, v_SmoothedOverheadMs * v_TimeEfficiencyMin / (1 - v_TimeEfficiencyMin))
            );
            v_NextBatchSize := trunc(v_BatchSize * v_TargetMs / CASE WHEN v_SmoothedMs < 1 THEN 1 ELSE v_SmoothedMs END)::integer;
            IF v_NextBatchSize > v_BatchSize * 1.2 THEN
                v_NextBatchSize := trunc(v_BatchSize * 1.2)::integer;
            END IF;
            v_BatchSize := CASE
                WHEN v_NextBatchSize < v_BatchSizeMin THEN v_BatchSizeMin
                WHEN v_NextBatchSize > v_BatchSizeMax THEN v_BatchSizeMax
                ELSE v_NextBatchSize
            END;
        END IF;

        -- Leave room for other work (no transaction open while sleeping).
        v_SleepMs := trunc(least(v_BatchMs * v_SleepFactor, 60000))::integer;
        IF NOT v_Done AND v_SleepMs > 0 THEN
            COMMIT;
            PERFORM pg_sleep(v_SleepMs / 1000.0);
        END IF;
    END LOOP;
    COMMIT;

    ----------------------------------------------------------------------------
    -- Log end
    ----------------------------------------------------------------------------
    PERFORM set_config('application_name', v_AppName, false);
    IF v_ErrState IS NOT NULL THEN
        -- A failed run ends failed with its error (and its lock released), then
        -- the error goes on to the caller.
        IF p_Execute = 'Y' THEN
            v_Message := left(concat(
                'Error ', v_ErrState, ': ', v_ErrMessage,
                E'\nCONTEXT:  ' || v_ErrContext
            ), 4000);
            BEGIN
                CALL Job.job_run_finish(p_JobRunId, 'failed', p_RowsAffected, v_Message);
            EXCEPTION WHEN OTHERS THEN
                -- Ending the run failed too: job_run_finish v4 has released the
                -- lock; the run's own error goes on below.
                NULL;
            END;
            COMMIT;
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = v_ErrState,
            MESSAGE = v_ErrMessage,
            DETAIL = concat_ws(E'\n', nullif(v_ErrDetail, ''), 'hint: ' || nullif(v_ErrHint, ''), 'raised at: ' || v_ErrContext);
    END IF;
    p_Result := CASE
        WHEN p_Execute = 'N' THEN 'dry_run'
        WHEN v_StopReason IS NULL OR v_StopReason = 'nothing to do' THEN 'succeeded'
        ELSE 'stopped'
    END;
    v_Message := concat(
        v_BatchNo, ' batches',
        CASE WHEN v_PausedMs > 0 THEN concat('; paused ', v_PausedMs / 1000, ' s for a busy database') END,
        CASE WHEN v_LockTimeouts > 0 THEN concat('; ', v_LockTimeouts, ' left for the next batch after a lock wait over LockTimeoutMs') END,
        CASE WHEN v_DeadlockRetried > 0 THEN concat('; ', v_DeadlockRetried, ' deadlock retries') END,
        '; ' || v_StopReason
    );
    IF p_Execute = 'Y' THEN
        CALL Job.job_run_finish(p_JobRunId, p_Result, p_RowsAffected, v_Message);
        COMMIT;
    END IF;
END;
$$;
