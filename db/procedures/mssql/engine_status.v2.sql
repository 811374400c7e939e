-- Monitor.engine_status, version 2.
-- The FLP engine's backlog for flp status (docs/engine.md): patients on the
-- dirty list that are due now and later, the oldest due one's age; patient
-- values new (waiting in PLSP.Patientvaerdier_Pending, plus any of status 0
-- still in PLSP.Patientvaerdier), invalid (2, retried nightly) and rejected
-- (3, given up); Relevant-list changes due but not yet applied; a running full
-- recompute. Every count reads a filtered index or a small table, never the
-- converted values. NowUtc is the database's time.
--
-- Version 2 (migration 0023): new values wait in PLSP.Patientvaerdier_Pending.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.engine_status
AS
BEGIN
    SET NOCOUNT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();

    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    -- Check parameters: none (it has none).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read: one row of counts
    ----------------------------------------------------------------------------
    SELECT
        (SELECT COUNT_BIG(*) FROM PLSP.PatientInkluderetPending AS p WHERE p.DueUtc <= @NowUtc) AS DirtyDue,
        (SELECT COUNT_BIG(*) FROM PLSP.PatientInkluderetPending AS p WHERE p.DueUtc > @NowUtc) AS DirtyLater,
        (SELECT MIN(p.DueUtc) FROM PLSP.PatientInkluderetPending AS p) AS OldestDueUtc,
        (SELECT COUNT_BIG(*) FROM PLSP.Patientvaerdier_Pending)
        + (
            SELECT COUNT_BIG(*) FROM PLSP.Patientvaerdier AS v
            WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = 0
        ) AS ValuesNew,
        (
            SELECT COUNT_BIG(*) FROM PLSP.Patientvaerdier AS v
            WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = 2
        ) AS ValuesInvalid,
        (SELECT COUNT_BIG(*) FROM PLSP.Patientvaerdier AS v WHERE v.ConversionStatus = 3) AS ValuesRejected,
        (
            SELECT COUNT_BIG(*) FROM PLSP.RelevantChange AS c
            WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= @NowUtc
        ) AS RelevantChangesDue,
        (SELECT COUNT_BIG(*) FROM PLSP.InclusionSweep AS w WHERE w.FinishedUtc IS NULL) AS SweepRunning,
        @NowUtc AS NowUtc;
END;
