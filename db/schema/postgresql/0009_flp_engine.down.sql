-- Undo 0009_flp_engine on PostgreSQL.
DO $$
DECLARE
    v_Table text;
BEGIN
    FOREACH v_Table IN ARRAY ARRAY['Patientvaerdier', 'Diagnose', 'Medicin', 'Ydelser', 'Egenskaber'] LOOP
        EXECUTE format('DROP TRIGGER TR_%1$s_Dirty_Insert ON PLSP.%1$s', v_Table);
        EXECUTE format('DROP TRIGGER TR_%1$s_Dirty_Update ON PLSP.%1$s', v_Table);
        EXECUTE format('DROP TRIGGER TR_%1$s_Dirty_Delete ON PLSP.%1$s', v_Table);
    END LOOP;
    FOREACH v_Table IN ARRAY ARRAY[
        'RelevantDiagnose', 'RelevantMedicinInklusion', 'RelevantVaerdiInklusion', 'RelevantEgenskab',
        'RelevantYdelseAarskontrol', 'RelevantForloeb'
    ] LOOP
        EXECUTE format('DROP TRIGGER TR_%1$s_Change_Insert ON PLSP.%1$s', v_Table);
        EXECUTE format('DROP TRIGGER TR_%1$s_Change_Update ON PLSP.%1$s', v_Table);
        EXECUTE format('DROP TRIGGER TR_%1$s_Change_Delete ON PLSP.%1$s', v_Table);
    END LOOP;
END
$$;
DROP FUNCTION PLSP.record_relevant_change();
DROP FUNCTION PLSP.mark_dirty_values();
DROP FUNCTION PLSP.mark_dirty();
DROP TABLE PLSP.InclusionSweep;
DROP TABLE PLSP.RelevantChange;
DROP INDEX PLSP.IX_PatientInkluderetPending_Due;
ALTER TABLE PLSP.PatientInkluderetPending DROP COLUMN DueUtc;
ALTER TABLE PLSP.PatientInkluderet_History DROP COLUMN Evidence;
ALTER TABLE PLSP.PatientInkluderet DROP COLUMN LastAnnualCheckId;
ALTER TABLE PLSP.PatientInkluderet DROP COLUMN Evidence;
DROP INDEX PLSP.IX_Patientvaerdier_Rejected;
ALTER TABLE PLSP.Patientvaerdier DROP CONSTRAINT CK_Patientvaerdier_ReasonCode;
ALTER TABLE PLSP.Patientvaerdier DROP COLUMN ReasonCode;
DROP TABLE PLSP.RelevantEgenskab;
DROP TABLE PLSP.RelevantYdelseAarskontrol;
DROP TABLE PLSP.RelevantMedicinInklusion;
DROP TABLE PLSP.RelevantVaerdiInklusion;
DROP TABLE PLSP.RelevantVaerdiEnhed;
DROP TABLE PLSP.RelevantForloeb;
