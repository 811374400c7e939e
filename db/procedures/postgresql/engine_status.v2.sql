-- Monitor.engine_status, version 2.
-- The FLP engine's backlog for flp status (docs/engine.md): patients on the
-- dirty list that are due now and later, the oldest due one's age; patient
-- values new (waiting in PLSP.Patientvaerdier_Pending, plus any of status 0
-- still in PLSP.Patientvaerdier), invalid (2, retried nightly) and rejected
-- (3, given up); Relevant-list changes due but not yet applied; a running full
-- recompute. Every count reads a partial index or a small table, never the
-- converted values. NowUtc is the database's time.
--
-- Version 2 (migration 0023): new values wait in PLSP.Patientvaerdier_Pending.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.engine_status()
RETURNS TABLE (
    DirtyDue bigint,
    DirtyLater bigint,
    OldestDueUtc timestamp,
    ValuesNew bigint,
    ValuesInvalid bigint,
    ValuesRejected bigint,
    RelevantChangesDue bigint,
    SweepRunning bigint,
    NowUtc timestamp
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_NowUtc timestamp(3) := (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3);
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    -- Check parameters: none (it has none).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read: one row of counts
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT
        (SELECT count(*) FROM PLSP.PatientInkluderetPending AS p WHERE p.DueUtc <= v_NowUtc),
        (SELECT count(*) FROM PLSP.PatientInkluderetPending AS p WHERE p.DueUtc > v_NowUtc),
        (SELECT min(p.DueUtc)::timestamp FROM PLSP.PatientInkluderetPending AS p),
        (SELECT count(*) FROM PLSP.Patientvaerdier_Pending)
            + (SELECT count(*) FROM PLSP.Patientvaerdier AS v WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = 0),
        (SELECT count(*) FROM PLSP.Patientvaerdier AS v WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = 2),
        (SELECT count(*) FROM PLSP.Patientvaerdier AS v WHERE v.ConversionStatus = 3),
        (SELECT count(*) FROM PLSP.RelevantChange AS c WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= v_NowUtc),
        (SELECT count(*) FROM PLSP.InclusionSweep AS w WHERE w.FinishedUtc IS NULL),
        v_NowUtc::timestamp;
END;
$$;
