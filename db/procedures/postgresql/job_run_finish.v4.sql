-- Job.job_run_finish, version 4.
-- Ends a run started by Job.job_run_start in this session: writes its end
-- time, status, rows and message, and releases the job's lock. Another
-- session's live run cannot be finished from here.
-- Version 2: a message over 4,000 characters is cut to 4,000, as SQL Server's
-- nvarchar(4000) parameter cuts it (version 1 failed on the UPDATE instead):
-- a run must always be finishable, whatever its message.
-- Version 3 (migration 0014): the T-SQL twin refuses to run inside a caller's
-- open transaction (@@TRANCOUNT > 0): the job lock is released at once while
-- the UPDATE would stay in the caller's transaction, undone by its ROLLBACK.
-- Version 4 (migration 0025): the UPDATE of the run's end sits in a block
-- with an exception handler. Version 3 released the lock after it: an UPDATE
-- that failed (lock_timeout 55P03, deadlock victim 40P01, statement_timeout)
-- ended the procedure with the session still holding the job's advisory lock,
-- so in a long-lived session (psql, a pooled connection) the job could not
-- start again. Now the handler releases the lock (a session-level advisory
-- lock: its release is not undone by the rollback that follows) and raises
-- the error again. A refused call (the checks below) changes nothing: the run
-- and its lock stay for a correct call or Job.job_run_fail.
-- Parameters and results are those of version 3.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * No refusal inside a caller's transaction: a procedure cannot see whether its caller opened a transaction block (no @@TRANCOUNT; transaction_timestamp() < statement_timestamp() also holds for a parameterised CALL in autocommit, measured with psycopg), and every caller calls it with none open (orchestrator.db.connection connects in autocommit; Job.run_batched after a COMMIT). Called in a block that then rolls back, the run stays 'running' with its lock released, and the job's next start marks it abandoned.
--   * The job lock is found in pg_locks (any role may hold an advisory lock); the T-SQL twin: APPLOCK_MODE for members of flp_orchestrator.
--   * The message is cut with left(..., 4000); the T-SQL twin: by its nvarchar(4000) parameter.
--   * No second attempt to end the run as 'failed' after a failed UPDATE: the RAISE rolls the whole CALL back (no autonomous transaction in PL/pgSQL), so the run stays 'running' with its lock released, and the job's next start marks it abandoned.
CREATE PROCEDURE Job.job_run_finish(
    p_JobRunId bigint,
    p_Status varchar(20),
    p_RowsAffected bigint DEFAULT NULL,
    p_Message varchar(4000) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_JobName varchar(100);
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    SELECT JobName INTO v_JobName
    FROM Ops.JobRun
    WHERE JobRunId = p_JobRunId AND Status = 'running';

    IF v_JobName IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobRunId is not supported: no running job run has this id. ';
    ELSIF NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('flp-job:' || v_JobName, 0)
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobRunId is not supported: this session does not hold that run''s job lock. ';
    END IF;
    IF p_Status IS NULL OR p_Status NOT IN ('succeeded', 'stopped', 'failed') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Status is not supported: use succeeded, stopped or failed. ';
    END IF;
    IF p_RowsAffected < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_RowsAffected is not supported: it cannot be negative. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Log end
    ----------------------------------------------------------------------------
    BEGIN
        UPDATE Ops.JobRun
        SET EndedUtc = clock_timestamp() AT TIME ZONE 'UTC',
            Status = p_Status,
            RowsAffected = coalesce(p_RowsAffected, RowsAffected),
            Message = left(p_Message, 4000)
        WHERE JobRunId = p_JobRunId;
    EXCEPTION WHEN OTHERS THEN
        -- Whatever happened to the row, the lock goes: the job can start again
        -- (session-level, so the rollback of this CALL does not take it back).
        PERFORM pg_advisory_unlock(hashtextextended('flp-job:' || v_JobName, 0));
        RAISE;
    END;

    -- The parameter check made sure this session holds the lock.
    PERFORM pg_advisory_unlock(hashtextextended('flp-job:' || v_JobName, 0));
END;
$$;
