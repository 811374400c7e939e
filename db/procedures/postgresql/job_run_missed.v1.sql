-- Job.job_run_missed, version 1.
-- Records that a slot of a job's timetable passed while no scheduler ran it
-- and is now older than the job's grace period: one Ops.JobRun row with
-- Status 'missed', StartedUtc the slot, EndedUtc now. The scheduler that
-- claimed the slot (Job.job_slot_claim) calls it once, so a long downtime
-- leaves one missed row per job, never one per slot.
CREATE PROCEDURE Job.job_run_missed(
    p_JobName varchar(101),
    p_SlotUtc timestamp(3),
    p_TriggeredBy varchar(20) DEFAULT 'orchestrator',
    p_Host varchar(129) DEFAULT NULL,
    p_Message varchar(4000) DEFAULT NULL,
    INOUT p_JobRunId bigint DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' OR length(p_JobName) > 100 THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name in lower-case letters, digits and _, at most 100 characters. ';
    END IF;
    IF p_SlotUtc IS NULL OR p_SlotUtc > clock_timestamp() AT TIME ZONE 'UTC' THEN
        v_Errors := v_Errors || 'The value for the parameter p_SlotUtc is not supported: give the missed slot''s time in UTC, not in the future. ';
    END IF;
    IF p_TriggeredBy IS NULL OR p_TriggeredBy NOT IN ('orchestrator', 'agent', 'manual', 'demo', 'test') THEN
        v_Errors := v_Errors || 'The value for the parameter p_TriggeredBy is not supported: use orchestrator, agent, manual, demo or test. ';
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

    ----------------------------------------------------------------------------
    -- Log the miss
    ----------------------------------------------------------------------------
    INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, StartedUtc, EndedUtc, Status, Message)
    VALUES (
        p_JobName, p_TriggeredBy, coalesce(p_Host, 'unknown'), p_SlotUtc, clock_timestamp() AT TIME ZONE 'UTC',
        'missed', coalesce(left(p_Message, 4000), 'missed: no scheduler ran the slot within the job''s grace period')
    )
    RETURNING JobRunId INTO p_JobRunId;
END;
$$;
