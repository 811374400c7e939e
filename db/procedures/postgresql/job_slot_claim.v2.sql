-- Job.job_slot_claim, version 2.
-- Version 2: p_ClaimedBy may be 'pg_cron' (Job.fallback_due version 2 claims
-- pg_cron's slots as pg_cron, SQL Server Agent's as agent).
-- Takes one slot of a job's timetable for the caller: exactly one scheduler
-- (of two orchestrators, SQL Server Agent or pg_cron) gets p_Result = 'claimed'
-- for a job and slot, by the primary key of Ops.JobSlot, even when the first
-- run has ended before another scheduler looks (the job lock only stops two
-- runs at the same time). The others get 'taken' and start nothing.
-- With p_Fallback = 'Y' (the fallback schedulers) the slot is only taken when
-- no orchestrator's heartbeat is younger than p_HeartbeatSeconds (NULL: the
-- setting FallbackAfterSeconds); otherwise p_Result = 'orchestrator_alive'.
-- Claims older than seven days of the same job are removed on the way.
-- p_Result = 'first' is a claim too: the job had no claim at all (a new
-- database, a new job, or one whose claims are all older than seven days), so
-- a slot missed before it is not recorded as missed.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * INSERT ... ON CONFLICT DO NOTHING; T-SQL: INSERT ... WHERE NOT EXISTS under UPDLOCK, HOLDLOCK.
CREATE PROCEDURE Job.job_slot_claim(
    p_JobName varchar(101),
    p_SlotUtc timestamp(3),
    p_ClaimedBy varchar(20) DEFAULT 'orchestrator',
    p_Host varchar(129) DEFAULT NULL,
    p_Fallback char(1) DEFAULT 'N',
    p_HeartbeatSeconds integer DEFAULT NULL,
    INOUT p_Result varchar(20) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_NowUtc timestamp(3) := clock_timestamp() AT TIME ZONE 'UTC';
    v_Setting varchar(400);
    v_HeartbeatSeconds integer := p_HeartbeatSeconds;
    v_Rows integer;
    v_First boolean;
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' OR length(p_JobName) > 100 THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name in lower-case letters, digits and _, at most 100 characters. ';
    END IF;
    IF p_SlotUtc IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_SlotUtc is not supported: give the slot''s time in UTC. ';
    END IF;
    IF p_ClaimedBy IS NULL OR p_ClaimedBy NOT IN ('orchestrator', 'agent', 'pg_cron', 'manual', 'demo', 'test') THEN
        v_Errors := v_Errors || 'The value for the parameter p_ClaimedBy is not supported: use orchestrator, agent, pg_cron, manual, demo or test. ';
    END IF;
    IF length(p_Host) > 128 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Host is not supported: give at most 128 characters. ';
    END IF;
    IF p_Fallback IS NULL OR p_Fallback NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Fallback is not supported: use Y (a fallback scheduler) or N. ';
    END IF;
    IF p_HeartbeatSeconds <= 0 OR p_HeartbeatSeconds > 86400 THEN
        v_Errors := v_Errors || 'The value for the parameter p_HeartbeatSeconds is not supported: give 1 to 86400 seconds, or NULL for the setting FallbackAfterSeconds. ';
    END IF;
    IF p_Fallback = 'Y' AND p_HeartbeatSeconds IS NULL THEN
        SELECT s.Value INTO v_Setting
        FROM Ops.Setting AS s
        WHERE s.Name = 'FallbackAfterSeconds' AND s.JobName IN (p_JobName, '*')
        ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END
        LIMIT 1;
        IF v_Setting IS NULL OR NOT (CASE WHEN v_Setting ~ '^[0-9]{1,5}$' THEN v_Setting::integer BETWEEN 1 AND 86400 ELSE false END) THEN
            v_Errors := v_Errors || 'Setting FallbackAfterSeconds (Ops.Setting) must be a whole number of seconds from 1 to 86400. ';
        ELSE
            v_HeartbeatSeconds := v_Setting::integer;
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- A fallback scheduler stands down while an orchestrator beats
    ----------------------------------------------------------------------------
    IF p_Fallback = 'Y' AND EXISTS (
        SELECT 1 FROM Ops.Heartbeat AS h
        WHERE h.BeatUtc > v_NowUtc - make_interval(secs => v_HeartbeatSeconds)
    ) THEN
        p_Result := 'orchestrator_alive';
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Take the slot (old claims of this job go first)
    ----------------------------------------------------------------------------
    DELETE FROM Ops.JobSlot
    WHERE JobName = p_JobName AND SlotUtc < v_NowUtc - INTERVAL '7 days';

    v_First := NOT EXISTS (SELECT 1 FROM Ops.JobSlot WHERE JobName = p_JobName);
    INSERT INTO Ops.JobSlot (JobName, SlotUtc, ClaimedBy, Host, ClaimedUtc)
    VALUES (p_JobName, p_SlotUtc, p_ClaimedBy, coalesce(p_Host, 'unknown'), v_NowUtc)
    ON CONFLICT (JobName, SlotUtc) DO NOTHING;
    GET DIAGNOSTICS v_Rows = ROW_COUNT;

    p_Result := CASE WHEN v_Rows = 0 THEN 'taken' WHEN v_First THEN 'first' ELSE 'claimed' END;
END;
$$;
