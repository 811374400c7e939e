-- Job.job_run_fail, version 4.
-- After a job failed in this session, marks the run this session still holds
-- the lock for as failed and releases the lock. Does nothing when the session
-- holds no lock for the job (Job.run_batched has finished the run already: from
-- version 2 it records its own failures on PostgreSQL too). The orchestrator
-- calls it after every failed run, for jobs that are not batched and for
-- failures outside run_batched's steps.
-- Version 2: a message over 4,000 characters is cut to 4,000 (as SQL Server's
-- nvarchar(4000) parameter cuts it), never refused: a failure must be recorded.
-- Version 3 (migration 0014): the T-SQL twin refuses to run inside a caller's
-- open transaction (@@TRANCOUNT > 0): the job lock is released at once while
-- the UPDATE would stay in the caller's transaction, undone by its ROLLBACK.
-- Version 4 (migration 0025): the UPDATE sits in a block with an exception
-- handler, as in Job.job_run_finish version 4: an UPDATE that failed
-- (lock_timeout 55P03, deadlock victim 40P01) left the session holding the
-- job's advisory lock, the very state this procedure exists to clear. Now the
-- handler releases the lock (session-level: the rollback that follows does not
-- take it back) and raises the error again. Parameters and results are those
-- of version 3.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * No refusal inside a caller's transaction: a procedure cannot see whether its caller opened a transaction block (no @@TRANCOUNT; transaction_timestamp() < statement_timestamp() also holds for a parameterised CALL in autocommit, measured with psycopg), and every caller calls it with none open (orchestrator.db.connection connects in autocommit; Job.run_batched after a COMMIT). Called in a block that then rolls back, the run stays 'running' with its lock released, and the job's next start marks it abandoned.
--   * The job lock is found in pg_locks (any role may hold an advisory lock); the T-SQL twin: APPLOCK_MODE for members of flp_orchestrator.
--   * The message is cut with left(..., 4000); the T-SQL twin: by its nvarchar(4000) parameter.
--   * No second attempt at the UPDATE after it failed: the RAISE rolls the whole CALL back (no autonomous transaction in PL/pgSQL), so the run stays 'running' with its lock released, and the job's next start marks it abandoned.
CREATE PROCEDURE Job.job_run_fail(
    p_JobName varchar(101),
    p_Message varchar(4000) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_LockKey bigint := hashtextextended('flp-job:' || p_JobName, 0);
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR btrim(p_JobName) = '' OR length(p_JobName) > 100 THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001',
            MESSAGE = 'The value for the parameter p_JobName is not supported: give the job''s name, at most 100 characters. ';
    END IF;

    IF NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
            AND ((classid::bigint << 32) | objid::bigint) = v_LockKey
    ) THEN
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Log end
    ----------------------------------------------------------------------------
    BEGIN
        UPDATE Ops.JobRun
        SET EndedUtc = clock_timestamp() AT TIME ZONE 'UTC',
            Status = 'failed',
            Message = coalesce(left(p_Message, 4000), 'failed')
        WHERE JobName = p_JobName AND Status = 'running';
    EXCEPTION WHEN OTHERS THEN
        -- Whatever happened to the row, the lock goes: the job can start again
        -- (session-level, so the rollback of this CALL does not take it back).
        PERFORM pg_advisory_unlock(v_LockKey);
        RAISE;
    END;

    PERFORM pg_advisory_unlock(v_LockKey);
END;
$$;
