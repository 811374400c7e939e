-- Job.job_stop_request, version 1.
-- Asks a running batched job to stop at its next batch, and undoes the ask.
-- Job.run_batched (version 2) re-reads the job's settings before every batch
-- and stops cleanly ('stopped', "time limit reached") once the run is older
-- than TimeLimitSeconds, so a stop request is the job's own TimeLimitSeconds
-- row set to 1 second; the row the job had (or that it had none) is kept in
-- StopSavedTimeLimitSeconds and the run asked in StopRequestedRunId.
--   p_Action = 'request': p_Result 'requested', or 'not_running' (no run of the job holds its lock).
--   p_Action = 'clear': puts the job's TimeLimitSeconds back once the run asked is over:
--     p_Result 'cleared', 'still_running' (that run still holds the lock) or 'nothing' (no request).
-- The orchestrator asks on SIGTERM and clears before and after each run; the
-- fallback clears before it runs a job, so a request left by a killed
-- orchestrator never outlives the run it was meant for.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * A run is alive when its row is running and some session holds the job's advisory lock (pg_locks); T-SQL: APPLOCK_TEST.
CREATE PROCEDURE Job.job_stop_request(
    p_JobName varchar(101),
    p_Action varchar(10) DEFAULT 'request',
    INOUT p_Result varchar(20) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_LockKey bigint := hashtextextended('flp-job:' || p_JobName, 0);
    v_RunId bigint;
    v_Requested varchar(400);
    v_Saved varchar(400);
    v_Alive boolean;
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' OR length(p_JobName) > 100 THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name in lower-case letters, digits and _, at most 100 characters. ';
    END IF;
    IF p_Action IS NULL OR p_Action NOT IN ('request', 'clear') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Action is not supported: use request or clear. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Which run is alive, and what was asked
    ----------------------------------------------------------------------------
    SELECT max(r.JobRunId) INTO v_RunId
    FROM Ops.JobRun AS r
    WHERE r.JobName = p_JobName AND r.Status = 'running';
    v_Alive := v_RunId IS NOT NULL AND EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = v_LockKey
    );
    SELECT s.Value INTO v_Requested FROM Ops.Setting AS s
    WHERE s.JobName = p_JobName AND s.Name = 'StopRequestedRunId';

    ----------------------------------------------------------------------------
    -- Request
    ----------------------------------------------------------------------------
    IF p_Action = 'request' THEN
        IF NOT v_Alive THEN
            p_Result := 'not_running';
            RETURN;
        END IF;
        IF v_Requested IS NULL THEN
            SELECT s.Value INTO v_Saved FROM Ops.Setting AS s
            WHERE s.JobName = p_JobName AND s.Name = 'TimeLimitSeconds';
            INSERT INTO Ops.Setting (JobName, Name, Value, Description)
            VALUES (p_JobName, 'StopSavedTimeLimitSeconds', coalesce(v_Saved, '-'),
                'the job''s TimeLimitSeconds before a stop request (- : it had none); put back by Job.job_stop_request clear');
            INSERT INTO Ops.Setting (JobName, Name, Value, Description)
            VALUES (p_JobName, 'TimeLimitSeconds', '1', 'a stop request: no new batch; put back by Job.job_stop_request clear')
            ON CONFLICT (JobName, Name) DO UPDATE SET Value = '1', UpdatedUtc = clock_timestamp() AT TIME ZONE 'UTC';
            INSERT INTO Ops.Setting (JobName, Name, Value, Description)
            VALUES (p_JobName, 'StopRequestedRunId', v_RunId::text, 'the run a stop request was made for');
        ELSE
            UPDATE Ops.Setting SET Value = v_RunId::text, UpdatedUtc = clock_timestamp() AT TIME ZONE 'UTC'
            WHERE JobName = p_JobName AND Name = 'StopRequestedRunId';
        END IF;
        p_Result := 'requested';
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Clear, once the run asked is over
    ----------------------------------------------------------------------------
    IF v_Requested IS NULL THEN
        p_Result := 'nothing';
        RETURN;
    END IF;
    IF v_Alive AND v_Requested = v_RunId::text THEN
        p_Result := 'still_running';
        RETURN;
    END IF;
    SELECT s.Value INTO v_Saved FROM Ops.Setting AS s
    WHERE s.JobName = p_JobName AND s.Name = 'StopSavedTimeLimitSeconds';
    IF v_Saved IS NULL OR v_Saved = '-' THEN
        DELETE FROM Ops.Setting WHERE JobName = p_JobName AND Name = 'TimeLimitSeconds';
    ELSE
        UPDATE Ops.Setting SET Value = v_Saved, UpdatedUtc = clock_timestamp() AT TIME ZONE 'UTC'
        WHERE JobName = p_JobName AND Name = 'TimeLimitSeconds';
    END IF;
    DELETE FROM Ops.Setting
    WHERE JobName = p_JobName AND Name IN ('StopRequestedRunId', 'StopSavedTimeLimitSeconds');
    p_Result := 'cleared';
END;
$$;
