-- Api.care_plan_read, version 1.
-- One citizen's care plans in one set-based read, as one JSON document in
-- p_Document (HentCDA, Hent værdier i CDA and the DDS on-demand retrieve build
-- their DK-CPD documents from it in the service, orchestrator/cda). The patient
-- is named by p_Cpr (the app's citizen) or by p_SetId (the setId of one of the
-- patient's care plans: the DDS on-demand entry), exactly one of the two.
-- p_Document is NULL when no such patient exists. Shape (docs/cda.md):
--   {"nowUtc", "patient": {patientId, cpr, givenName, familyName, birthDate, sex},
--    "clinic": {sor, name, ydernummer},
--    "plans": [{forloebsplanId, forloebCode, title, setId, status, createdUtc,
--               planVersionNumber,
--               "version": newest PLSP.CdaDocumentVersion row or null
--                          {versionNumber, documentId, contentHash, createdUtc,
--                           previousDocumentId (the version before it, for RPLC)},
--               "diagnoses":  [{code, codeSystem, description, diagnosedDate, endedDate}],
--               "medication": [{atcCode, drugName, startDate, endDate}],
--               "values":     [{valueId, code, description, value, unit, comparator, measuredUtc}]}]}
-- A plan's diagnoses are those under an active RelevantDiagnose prefix of its
-- type, its medication those under an active RelevantMedicin prefix of its
-- type, its values the converted values (status 1) of codes with an active
-- RelevantVaerdi row for its type or for every type. Lists are ordered, so the
-- same data gives the same text. Reads only, at READ COMMITTED.
-- Twin differences: json_build_object/json_agg here, FOR JSON PATH on SQL Server;
-- uuids are lower case here, upper case there (the service folds them).
CREATE PROCEDURE Api.care_plan_read(
    p_Cpr char(10) DEFAULT NULL,
    p_SetId uuid DEFAULT NULL,
    p_NowUtc timestamp(3) DEFAULT NULL,
    INOUT p_Document text DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_NowUtc timestamp(3) := coalesce(p_NowUtc, (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3));
    v_PatientId bigint;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a read at READ COMMITTED, inside or outside a transaction).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_Cpr IS NOT NULL AND p_Cpr !~ '^[0-9]{10}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Cpr is not supported: give ten digits without a hyphen. ';
    END IF;
    IF (p_Cpr IS NULL) = (p_SetId IS NULL) THEN
        v_Errors := v_Errors || 'The parameters p_Cpr and p_SetId are not supported together: give exactly one (the citizen''s CPR or a care plan''s setId). ';
    END IF;
    IF p_NowUtc IS NOT NULL AND (p_NowUtc < '2000-01-01' OR p_NowUtc >= '2100-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_NowUtc is not supported: give a UTC time from 2000 to 2099, or NULL for now. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Find the patient
    ----------------------------------------------------------------------------
    IF p_Cpr IS NOT NULL THEN
        SELECT p.PatientId INTO v_PatientId FROM PLSP.Patient AS p WHERE p.Cpr = p_Cpr;
    ELSE
        SELECT f.PatientId INTO v_PatientId FROM PLSP.Forloebsplan AS f WHERE f.SetId = p_SetId;
    END IF;
    IF v_PatientId IS NULL THEN
        p_Document := NULL;
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Read: the patient, the clinic and every care plan with its sections
    ----------------------------------------------------------------------------
    SELECT json_build_object(
        'nowUtc', v_NowUtc,
        'patient', json_build_object(
            'patientId', p.PatientId, 'cpr', p.Cpr, 'givenName', p.GivenName,
            'familyName', p.FamilyName, 'birthDate', p.BirthDate, 'sex', p.Sex
        ),
        'clinic', json_build_object('sor', k.SorCode, 'name', k.Name, 'ydernummer', k.Ydernummer),
        'plans', coalesce((
            SELECT json_agg(json_build_object(
                'forloebsplanId', f.ForloebsplanId,
                'forloebCode', f.ForloebCode,
                'title', (
                    SELECT rf.Description FROM PLSP.RelevantForloeb AS rf
                    WHERE rf.ForloebCode = f.ForloebCode AND rf.ActiveFromUtc <= v_NowUtc
                    ORDER BY rf.ActiveFromUtc DESC LIMIT 1
                ),
                'setId', f.SetId,
                'status', f.Status,
                'createdUtc', f.CreatedUtc,
                'planVersionNumber', f.VersionNumber,
                'version', (
                    SELECT json_build_object(
                        'versionNumber', dv.VersionNumber, 'documentId', dv.DocumentId,
                        'contentHash', dv.ContentHash, 'createdUtc', dv.CreatedUtc,
                        'previousDocumentId', (
                            SELECT pv.DocumentId FROM PLSP.CdaDocumentVersion AS pv
                            WHERE pv.ForloebsplanId = dv.ForloebsplanId AND pv.VersionNumber = dv.VersionNumber - 1
                        )
                    )
                    FROM PLSP.CdaDocumentVersion AS dv
                    WHERE dv.ForloebsplanId = f.ForloebsplanId
                    ORDER BY dv.VersionNumber DESC LIMIT 1
                ),
                'diagnoses', coalesce((
                    SELECT json_agg(json_build_object(
                        'code', d.Code, 'codeSystem', d.CodeSystem, 'description', rd.Description,
                        'diagnosedDate', d.DiagnosedDate, 'endedDate', d.EndedDate
                    ) ORDER BY d.DiagnosedDate, d.DiagnoseId)
                    FROM PLSP.Diagnose AS d
                    CROSS JOIN LATERAL (
                        SELECT r.Description FROM PLSP.RelevantDiagnose AS r
                        WHERE r.ForloebCode = f.ForloebCode AND r.CodeSystem = d.CodeSystem
                            AND d.Code LIKE r.Code || '%'
                            AND r.ActiveFromUtc <= v_NowUtc AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_NowUtc)
                        ORDER BY length(r.Code) DESC, r.ActiveFromUtc DESC LIMIT 1
                    ) AS rd
                    WHERE d.PatientId = f.PatientId
                ), '[]'::json),
                'medication', coalesce((
                    SELECT json_agg(json_build_object(
                        'atcCode', m.AtcCode, 'drugName', m.DrugName,
                        'startDate', m.StartDate, 'endDate', m.EndDate
                    ) ORDER BY m.StartDate, m.MedicinId)
                    FROM PLSP.Medicin AS m
                    WHERE m.PatientId = f.PatientId
                        AND EXISTS (
                            SELECT 1 FROM PLSP.RelevantMedicin AS r
                            WHERE r.ForloebCode = f.ForloebCode AND m.AtcCode LIKE r.AtcPrefix || '%'
                                AND r.ActiveFromUtc <= v_NowUtc AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_NowUtc)
                        )
                ), '[]'::json),
                'values', coalesce((
                    SELECT json_agg(json_build_object(
                        'valueId', v.PatientvaerdiId, 'code', v.Code, 'description', rv.Description,
                        'value', v.ValueNumeric, 'unit', v.Unit, 'comparator', v.Comparator,
                        'measuredUtc', v.MeasuredUtc
                    ) ORDER BY v.Code, v.MeasuredUtc, v.PatientvaerdiId)
                    FROM PLSP.Patientvaerdier AS v
                    CROSS JOIN LATERAL (
                        SELECT r.Description FROM PLSP.RelevantVaerdi AS r
                        WHERE r.Code = v.Code AND (r.ForloebCode IS NULL OR r.ForloebCode = f.ForloebCode)
                            AND r.ActiveFromUtc <= v_NowUtc AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_NowUtc)
                        ORDER BY r.ActiveFromUtc DESC LIMIT 1
                    ) AS rv
                    WHERE v.PatientId = f.PatientId AND v.ConversionStatus = 1
                        AND v.ValueNumeric IS NOT NULL AND v.MeasuredUtc IS NOT NULL
                ), '[]'::json)
            ) ORDER BY f.ForloebCode)
            FROM PLSP.Forloebsplan AS f
            WHERE f.PatientId = p.PatientId
        ), '[]'::json)
    )::text
    INTO p_Document
    FROM PLSP.Patient AS p
    INNER JOIN PLSP.Klinik AS k ON k.KlinikId = p.KlinikId
    WHERE p.PatientId = v_PatientId;
END;
$$;
