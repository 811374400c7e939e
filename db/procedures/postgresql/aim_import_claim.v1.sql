-- Job.aim_import_claim, version 1.
-- One claim of FlpAimImport (docs/jobs/aim.md): the next p_BatchSize FLP_AIM
-- rows to publish after p_AfterId, oldest (lowest Id) first. A row is due
-- while it is pending (Status 0), and again when it was queued (Status 1)
-- longer ago than p_VisibilityTimeoutSeconds without being delivered (its
-- message was lost, or dead-lettered). The claim only stamps the run on the
-- rows (ClaimJobRunId); Status stays as it was, so a run that dies before its
-- messages are confirmed leaves the rows due for the next run: nothing is lost.
-- Job.aim_import_mark_queued marks them queued once the queue has confirmed.
-- Rows another session holds locked (the consumer marking them delivered) are
-- skipped (FOR UPDATE SKIP LOCKED), never waited for.
-- p_Ids returns the claimed ids as a comma list in Id order; p_LastId the
-- highest one (where the next claim starts). p_Execute = 'N' counts the rows a
-- claim would take and changes nothing.
-- Only the session running the aim_import job (holding its lock) may claim.
CREATE PROCEDURE Job.aim_import_claim(
    p_JobRunId bigint,
    p_BatchSize integer,
    p_VisibilityTimeoutSeconds integer,
    p_Execute char(1) DEFAULT 'Y',
    p_AfterId bigint DEFAULT NULL,
    INOUT p_LastId bigint DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Ids text DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_FromId bigint := coalesce(p_AfterId, 0);
    v_CutoffUtc timestamp(3);
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: this session runs the aim_import job
    ----------------------------------------------------------------------------
    IF NOT EXISTS (
        SELECT 1 FROM Ops.JobRun AS r
        WHERE r.JobRunId = p_JobRunId AND r.JobName = 'aim_import' AND r.Status = 'running'
    ) OR NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('flp-job:aim_import', 0)
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobRunId is not supported: give the running aim_import run this session started (Job.job_run_start). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_BatchSize IS NULL OR p_BatchSize NOT BETWEEN 1 AND 4999 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 to 4999 rows (lock escalation starts at 5000). ';
    END IF;
    IF p_VisibilityTimeoutSeconds IS NULL OR p_VisibilityTimeoutSeconds NOT BETWEEN 1 AND 604800 THEN
        v_Errors := v_Errors || 'The value for the parameter p_VisibilityTimeoutSeconds is not supported: give 1 to 604800 seconds. ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (claim) or N (count only). ';
    END IF;
    IF p_AfterId < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_AfterId is not supported: give the last Id claimed, or NULL at the start. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    v_CutoffUtc := (clock_timestamp() AT TIME ZONE 'UTC') - make_interval(secs => p_VisibilityTimeoutSeconds);

    ----------------------------------------------------------------------------
    -- Do the work (the run's Ops.JobRun row is its log)
    ----------------------------------------------------------------------------
    IF p_Execute = 'N' THEN
        SELECT count(*), max(d.Id), NULL INTO p_Rows, p_LastId, p_Ids
        FROM (
            SELECT a.Id
            FROM PLSP.FLP_AIM AS a
            WHERE a.Status IN (0, 1) AND a.Id > v_FromId AND (a.Status = 0 OR a.QueuedUtc < v_CutoffUtc)
            ORDER BY a.Id
            LIMIT p_BatchSize
        ) AS d;
    ELSE
        WITH due AS (
            SELECT a.Id
            FROM PLSP.FLP_AIM AS a
            WHERE a.Status IN (0, 1) AND a.Id > v_FromId AND (a.Status = 0 OR a.QueuedUtc < v_CutoffUtc)
            ORDER BY a.Id
            LIMIT p_BatchSize
            FOR UPDATE SKIP LOCKED
        ),

        claimed AS (
            UPDATE PLSP.FLP_AIM AS a
            SET ClaimJobRunId = p_JobRunId
            FROM due AS d
            WHERE a.Id = d.Id
            RETURNING a.Id
        )

        SELECT count(*), max(c.Id), string_agg(c.Id::text, ',' ORDER BY c.Id)
        INTO p_Rows, p_LastId, p_Ids
        FROM claimed AS c;
    END IF;
    p_LastId := coalesce(p_LastId, v_FromId);
END;
$$;
