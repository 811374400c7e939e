-- Job.job_run_start, version 3.
-- Version 3: p_TriggeredBy may be 'pg_cron' (the PostgreSQL fallback records
-- its runs as itself; SQL Server Agent's stay 'agent'). Same parameters as
-- version 2, so every caller keeps working.
-- Starts a run of a job: takes the job's lock for this session (held until
-- Job.job_run_finish or the session ends) and writes its Ops.JobRun row.
-- A second run of the same job gets p_Result = 'already_running' at once, with a
-- 'skipped' row, instead of waiting: the orchestrator and pg_cron may both
-- start a job, and only one of them may run it.
-- Version 2: only the orchestrator's role (or the owner) may start a run; the
-- host falls back to 'unknown' as on SQL Server; over-long names are refused.
--
-- Who may hold a job's lock. pg_try_advisory_lock is open to every role, so
-- any session of the database (the reader's, the LPS's) could take the key
-- and every run would be 'skipped' while it holds it; PostgreSQL cannot limit
-- who takes an advisory lock. So the lock is only ever taken here, this
-- procedure is the only way to start a run, and it checks that the session's
-- user (session_user: this procedure runs as its owner) is a member of
-- flp_orchestrator or of the owner. A squatter shows in pg_locks (locktype
-- advisory, the key hashtextextended('flp-job:<job>', 0)); docs/operations.md
-- says how to find and end it.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * The role check is explicit here; on SQL Server sp_getapplock itself refuses (@DbPrincipal = 'flp_orchestrator').
--   * The host defaults to the client's address (none over a Unix socket), then 'unknown'; T-SQL: HOST_NAME(), then 'unknown'.
CREATE PROCEDURE Job.job_run_start(
    p_JobName varchar(101),
    p_TriggeredBy varchar(20) DEFAULT 'manual',
    p_Host varchar(129) DEFAULT NULL,
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
    -- Check requirements (the lock is session-level whatever transaction the
    -- caller is in): the caller runs the orchestrator's role, or owns the jobs.
    ----------------------------------------------------------------------------
    IF NOT (pg_has_role(session_user, 'flp_orchestrator', 'MEMBER') OR pg_has_role(session_user, current_user, 'MEMBER')) THEN
        v_Errors := v_Errors || format('Job.job_run_start may only be called by members of flp_orchestrator or of the owner %s, not by %s: the job lock is the orchestrator''s. ', current_user, session_user);
    END IF;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    -- Lower case only, as on SQL Server (where the lock name compares binary).
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' OR length(p_JobName) > 100 THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name in lower-case letters, digits and _, at most 100 characters. ';
    END IF;
    IF EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = v_LockKey
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: this session holds the job''s lock already; call Job.job_run_fail first. ';
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

    p_Host := coalesce(p_Host, host(inet_client_addr()), 'unknown');
    p_Parameters := left(p_Parameters, 4000);  -- as T-SQL's nvarchar(4000) keeps it

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
    -- The advisory lock belongs to the session, not to the transaction: a start
    -- that fails here releases it, or the job would be 'already_running' until
    -- this pooled session ends (as on SQL Server).
    BEGIN
        UPDATE Ops.JobRun
        SET Status = 'abandoned',
            EndedUtc = clock_timestamp() AT TIME ZONE 'UTC',
            Message = 'the session ended before the run finished; found by a later run'
        WHERE JobName = p_JobName AND Status = 'running';

        INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, StartedUtc, Status, Parameters)
        VALUES (p_JobName, p_TriggeredBy, p_Host, clock_timestamp() AT TIME ZONE 'UTC', 'running', p_Parameters)
        RETURNING JobRunId INTO p_JobRunId;
    EXCEPTION WHEN query_canceled OR OTHERS THEN  -- OTHERS alone leaves out a statement_timeout's cancel
        PERFORM pg_advisory_unlock(v_LockKey);
        RAISE;
    END;

    p_Result := 'started';
END;
$$;
