-- Job.job_run_start, version 1.
-- Starts a run of a job: takes the job's lock for this session (held until
-- Job.job_run_finish or the session ends) and writes its Ops.JobRun row.
-- A second run of the same job gets p_Result = 'already_running' at once, with a
-- 'skipped' row, instead of waiting: the orchestrator and pg_cron may both
-- start a job, and only one of them may run it.
CREATE PROCEDURE Job.job_run_start(
    p_JobName varchar(100),
    p_TriggeredBy varchar(20) DEFAULT 'manual',
    p_Host varchar(128) DEFAULT NULL,
    p_Parameters varchar(4000) DEFAULT NULL,
    INOUT p_JobRunId bigint DEFAULT NULL,
    INOUT p_Result varchar(20) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_LockKey bigint := hashtextextended('flp-job:' || p_JobName, 0);
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none beyond PostgreSQL 14 (the lock is session-level
    -- whatever transaction the caller is in).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    -- Lower case only, as on SQL Server (where the lock name compares binary).
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name in lower-case letters, digits and _. ';
    END IF;
    IF EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = v_LockKey
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: this session holds the job''s lock already; call Job.job_run_fail first. ';
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

    p_Host := coalesce(p_Host, host(inet_client_addr()), 'local');

    ----------------------------------------------------------------------------
    -- Take the job's lock without waiting
    ----------------------------------------------------------------------------
    -- pg_try_advisory_lock only answers yes or no (SQL Server's error codes
    -- below -1 have no counterpart).
    IF NOT pg_try_advisory_lock(v_LockKey) THEN
        INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, EndedUtc, Status, Parameters, Message)
        VALUES (
            p_JobName, p_TriggeredBy, p_Host, clock_timestamp() AT TIME ZONE 'UTC', 'skipped', p_Parameters,
            'already running: another session holds the job lock'
        )
        RETURNING JobRunId INTO p_JobRunId;
        p_Result := 'already_running';
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Log start. Holding the lock proves no earlier run is alive, so a row
    -- still marked running belongs to a run whose session died.
    ----------------------------------------------------------------------------
    UPDATE Ops.JobRun
    SET Status = 'abandoned',
        EndedUtc = clock_timestamp() AT TIME ZONE 'UTC',
        Message = 'the session ended before the run finished; found by a later run'
    WHERE JobName = p_JobName AND Status = 'running';

    INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, StartedUtc, Status, Parameters)
    VALUES (p_JobName, p_TriggeredBy, p_Host, clock_timestamp() AT TIME ZONE 'UTC', 'running', p_Parameters)
    RETURNING JobRunId INTO p_JobRunId;

    p_Result := 'started';
END;
$$;
