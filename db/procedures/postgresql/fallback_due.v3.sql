-- Job.fallback_due, version 3.
-- Version 3 (migration 0025): p_DailyAt is varchar(6), as the T-SQL twin's,
-- whose varchar(5) cut a longer value before the check ran; here the anchored
-- regular expression already refused it (a routine's parameter keeps no
-- length). The message says the value is 5 characters.
-- Version 2: a job switched off by its setting Enabled = 'N' (Ops.Setting,
-- the job's own row) is not run: p_Reason 'disabled', no row; and the caller
-- says who it is (p_TriggeredBy: 'agent' for SQL Server Agent, 'pg_cron'), so
-- the slot is claimed in that name. The other timetable overrides (EveryMinutes,
-- DailyAt) are the orchestrator's: the fallback keeps the registry's timetable,
-- which its scheduler jobs are scheduled by (docs/operations.md says why).
-- The fallback schedulers' gate (SQL Server Agent, pg_cron: db/agent/). Each
-- of their steps calls it, then runs the job's procedure only when p_Due = 'Y':
--   * the job's current slot: for an interval job (p_EverySeconds) the
--     multiple of the interval since the epoch in UTC, as the orchestrator
--     counts; for a daily job (p_DailyAt, HH:MM Danish time) today's local time,
--     due from that minute for 15 minutes (the schedulers call daily jobs every
--     hour at that minute, so the server's own time zone does not matter; a
--     time inside the spring-forward gap is not run by the fallback that day);
--   * no orchestrator heartbeat younger than p_HeartbeatSeconds (NULL: the
--     setting FallbackAfterSeconds, default 300): otherwise p_Reason
--     'orchestrator_alive' and nothing happens, not even a row;
--   * the slot not yet taken by anyone (Job.job_slot_claim); a stop request
--     left for the job by a killed orchestrator is cleared first.
-- It never runs the job itself: PostgreSQL cannot COMMIT inside a procedure
-- called dynamically, so the scheduler's step names the job's procedure.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * Danish time through the IANA zone Europe/Copenhagen; T-SQL: AT TIME ZONE 'Romance Standard Time'.
--   * The Enabled value compares with =, binary as the T-SQL twin's COLLATE Latin1_General_BIN2.
--   * The job procedure is looked up in pg_proc; T-SQL: OBJECT_ID(..., 'P').
--   * p_DailyAt is checked by one anchored regular expression; T-SQL: DATALENGTH and a binary LIKE.
CREATE PROCEDURE Job.fallback_due(
    p_JobName varchar(101),
    p_EverySeconds integer DEFAULT NULL,
    p_DailyAt varchar(6) DEFAULT NULL,
    p_Host varchar(129) DEFAULT NULL,
    p_HeartbeatSeconds integer DEFAULT NULL,
    INOUT p_Due char(1) DEFAULT NULL,
    INOUT p_Reason varchar(40) DEFAULT NULL,
    p_TriggeredBy varchar(20) DEFAULT 'agent'
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_NowUtc timestamp(3) := clock_timestamp() AT TIME ZONE 'UTC';
    v_NowLocal timestamp(3);
    v_SlotLocal timestamp(3);
    v_SlotUtc timestamp(3);
    v_Claim varchar(20);
    v_Stop varchar(20);
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' OR length(p_JobName) > 100 THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name in lower-case letters, digits and _, at most 100 characters. ';
    ELSIF NOT EXISTS (
        SELECT 1 FROM pg_proc AS p
        INNER JOIN pg_namespace AS n ON p.pronamespace = n.oid
        WHERE n.nspname = 'job' AND p.proname = p_JobName AND p.prokind = 'p'
    ) THEN
        v_Errors := v_Errors || format('The value for the parameter p_JobName is not supported: there is no job procedure Job.%s. ', p_JobName);
    END IF;
    IF (p_EverySeconds IS NULL) = (p_DailyAt IS NULL) THEN
        v_Errors := v_Errors || 'The value for the parameter p_EverySeconds is not supported: give either p_EverySeconds or p_DailyAt. ';
    END IF;
    IF p_EverySeconds <= 0 OR p_EverySeconds > 86400 OR 86400 % nullif(p_EverySeconds, 0) <> 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_EverySeconds is not supported: give 1 to 86400 seconds dividing a day. ';
    END IF;
    IF p_DailyAt !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_DailyAt is not supported: give HH:MM (5 characters, 00:00 to 23:59), Danish time. ';
    END IF;
    IF length(p_Host) > 128 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Host is not supported: give at most 128 characters. ';
    END IF;
    IF p_HeartbeatSeconds <= 0 OR p_HeartbeatSeconds > 86400 THEN
        v_Errors := v_Errors || 'The value for the parameter p_HeartbeatSeconds is not supported: give 1 to 86400 seconds, or NULL for the setting FallbackAfterSeconds. ';
    END IF;
    IF p_TriggeredBy IS NULL OR p_TriggeredBy NOT IN ('agent', 'pg_cron') THEN
        v_Errors := v_Errors || 'The value for the parameter p_TriggeredBy is not supported: use agent (SQL Server Agent) or pg_cron. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- A job switched off (its setting Enabled = 'N'): nothing, not even a row
    ----------------------------------------------------------------------------
    IF EXISTS (
        SELECT 1 FROM Ops.Setting AS s
        WHERE s.JobName = p_JobName AND s.Name = 'Enabled' AND s.Value = 'N'
    ) THEN
        p_Due := 'N';
        p_Reason := 'disabled';
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- The current slot
    ----------------------------------------------------------------------------
    IF p_EverySeconds IS NOT NULL THEN
        v_SlotUtc := to_timestamp(floor(extract(EPOCH FROM v_NowUtc) / p_EverySeconds) * p_EverySeconds) AT TIME ZONE 'UTC';
    ELSE
        v_NowLocal := (v_NowUtc AT TIME ZONE 'UTC') AT TIME ZONE 'Europe/Copenhagen';
        v_SlotLocal := v_NowLocal::date + p_DailyAt::time;
        IF v_NowLocal < v_SlotLocal OR v_NowLocal >= v_SlotLocal + INTERVAL '15 minutes' THEN
            p_Due := 'N';
            p_Reason := 'not_due';
            RETURN;
        END IF;
        v_SlotUtc := (v_SlotLocal AT TIME ZONE 'Europe/Copenhagen') AT TIME ZONE 'UTC';
    END IF;

    ----------------------------------------------------------------------------
    -- Heartbeat and claim
    ----------------------------------------------------------------------------
    CALL Job.job_slot_claim(p_JobName, v_SlotUtc, p_TriggeredBy, coalesce(p_Host, 'fallback'), 'Y', p_HeartbeatSeconds, v_Claim);
    IF v_Claim NOT IN ('claimed', 'first') THEN
        p_Due := 'N';
        p_Reason := v_Claim;
        RETURN;
    END IF;
    CALL Job.job_stop_request(p_JobName, 'clear', v_Stop);

    p_Due := 'Y';
    p_Reason := 'claimed';
END;
$$;
