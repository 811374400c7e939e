-- Job.aim_documents, version 2.
-- The care-plan documents of one AIM message, in one set-based call: for each
-- FLP_AIM id in p_Ids (a JSON array of ids) that is still to deliver (Status 0
-- or 1), the care plan, the patient with CPR and clinic, the patient's
-- inclusion in each population, recent values (RecentValueDays setting),
-- diagnoses, medication, services and properties. The shape is
-- docs/aim-document.md (JSON Schema docs/aim-document.schema.json); the AIM id
-- is the document's _id, so a redelivered message writes no duplicate.
-- p_Documents is a JSON array in Id order ('[]' when none); p_Found counts it.
-- Ids already delivered (Status 2, or archived to FLP_AIM_History) are left
-- out and counted in p_AlreadyDelivered; ids found nowhere, or whose care plan
-- is gone, are returned in p_Missing (comma list) for the dead-letter place.
-- Reads only; the caller marks the rows delivered (Job.aim_mark_delivered)
-- once MongoDB has them.
-- Changed from v1: every distinct id is read and classified once, in the one
-- statement that builds the documents (one snapshot), so p_Found +
-- p_AlreadyDelivered + the ids in p_Missing is always the number of distinct
-- ids; v1 classified them again in a second statement, which could count a
-- row marked or deleted between the two reads twice or not at all. A row in
-- PLSP.FLP_AIM decides by its Status; FLP_AIM_History only counts for an id
-- not in PLSP.FLP_AIM. Same parameters as v1.
-- Twin differences (db/procedures/mssql/aim_documents.v2.sql):
-- SQL Server classifies the ids into a table variable in one INSERT (the
-- columns of the document's own rows captured with it) and builds the
-- documents from it with FOR JSON; PostgreSQL does both in one SELECT.
CREATE PROCEDURE Job.aim_documents(
    p_Ids text,
    INOUT p_Documents text DEFAULT NULL,
    INOUT p_Found integer DEFAULT NULL,
    INOUT p_AlreadyDelivered integer DEFAULT NULL,
    INOUT p_Missing text DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Ids jsonb;
    v_DaysText varchar(400);
    v_Days integer;
    v_NowUtc timestamp(3) := clock_timestamp() AT TIME ZONE 'UTC';
    v_CutoffUtc timestamp(3);
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_Ids ~ '^\s*\[' THEN
        BEGIN
            v_Ids := p_Ids::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            v_Ids := NULL;  -- not JSON: reported below
        END;
    END IF;
    IF v_Ids IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_Ids is not supported: give a JSON array of FLP_AIM ids. ';
    ELSIF jsonb_array_length(v_Ids) NOT BETWEEN 1 AND 4999 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Ids is not supported: give 1 to 4999 ids. ';
    ELSIF EXISTS (
        SELECT 1 FROM jsonb_array_elements(v_Ids) AS e(Value)
        WHERE jsonb_typeof(e.Value) <> 'number' OR e.Value::text !~ '^[1-9][0-9]{0,17}$'
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_Ids is not supported: every id must be a positive whole number. ';
    END IF;

    SELECT s.Value INTO v_DaysText
    FROM Ops.Setting AS s
    WHERE s.JobName IN ('aim_consume', '*') AND s.Name = 'RecentValueDays'
    ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END
    LIMIT 1;
    IF v_DaysText ~ '^[0-9]{1,5}$' THEN
        v_Days := v_DaysText::integer;
    END IF;
    IF v_Days IS NULL OR v_Days NOT BETWEEN 1 AND 36500 THEN
        v_Errors := v_Errors || 'Setting RecentValueDays (Ops.Setting, job aim_consume) must be a whole number of days from 1 to 36500. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    v_CutoffUtc := v_NowUtc - make_interval(days => v_Days);

    ----------------------------------------------------------------------------
    -- Do the work: classify every id and build the documents, in one statement
    -- (reads only; nothing is logged per message)
    ----------------------------------------------------------------------------
    WITH wanted AS (
        SELECT DISTINCT e.Value::bigint AS Id
        FROM jsonb_array_elements_text(v_Ids) AS e(Value)
    ),

    classified AS (
        SELECT
            w.Id,
            CASE
                WHEN a.Status = 2 THEN 'delivered'
                WHEN a.Id IS NULL AND EXISTS (SELECT 1 FROM PLSP.FLP_AIM_History AS h WHERE h.Id = w.Id) THEN 'delivered'
                WHEN k.KlinikId IS NOT NULL THEN 'found'
                ELSE 'missing'
            END AS Kind,
            a.CreatedUtc AS AimCreatedUtc,
            f.ForloebsplanId, f.ForloebCode, f.SetId, f.VersionNumber, f.Status AS PlanStatus,
            f.CreatedUtc AS PlanCreatedUtc, f.UpdatedUtc AS PlanUpdatedUtc,
            p.PatientId, p.Cpr, p.GivenName, p.FamilyName, p.BirthDate, p.Sex,
            k.KlinikId, k.SorCode, k.Ydernummer, k.Name AS KlinikName
        FROM wanted AS w
        LEFT JOIN PLSP.FLP_AIM AS a ON a.Id = w.Id
        LEFT JOIN PLSP.Forloebsplan AS f ON f.ForloebsplanId = a.ForloebsplanId AND a.Status IN (0, 1)
        LEFT JOIN PLSP.Patient AS p ON p.PatientId = f.PatientId
        LEFT JOIN PLSP.Klinik AS k ON k.KlinikId = p.KlinikId
    )

    SELECT
        coalesce(json_agg(json_build_object(
            '_id', d.Id,
            'aimId', d.Id,
            'aimCreatedUtc', d.AimCreatedUtc,
            'extractedUtc', v_NowUtc,
            'rkkpDatabase', CASE d.ForloebCode WHEN 'ALAL22' THEN 'DVDD' WHEN 'ALAL21' THEN 'DrKOL' WHEN 'ALAL02' THEN 'DHR' END,
            'carePlan', json_build_object(
                'id', d.ForloebsplanId, 'forloebCode', d.ForloebCode, 'setId', d.SetId,
                'versionNumber', d.VersionNumber, 'status', d.PlanStatus,
                'createdUtc', d.PlanCreatedUtc, 'updatedUtc', d.PlanUpdatedUtc
            ),
            'patient', json_build_object(
                'id', d.PatientId, 'cpr', d.Cpr, 'givenName', d.GivenName, 'familyName', d.FamilyName,
                'birthDate', d.BirthDate, 'sex', d.Sex,
                'clinic', json_build_object('id', d.KlinikId, 'sorCode', d.SorCode, 'ydernummer', d.Ydernummer, 'name', d.KlinikName)
            ),
            'inclusion', coalesce((
                SELECT json_agg(json_build_object(
                    'forloebCode', i.ForloebCode, 'isIncluded', i.IsIncluded, 'reason', i.Reason, 'changedUtc', i.ChangedUtc
                ) ORDER BY i.ForloebCode)
                FROM PLSP.PatientInkluderet AS i
                WHERE i.PatientId = d.PatientId
            ), '[]'::json),
            'values', coalesce((
                SELECT json_agg(json_build_object(
                    'code', v.Code, 'rawValue', v.RawValue, 'rawTime', v.RawTime, 'value', v.ValueNumeric,
                    'comparator', v.Comparator, 'unit', v.Unit, 'measuredUtc', v.MeasuredUtc,
                    'receivedUtc', v.ReceivedUtc, 'conversionStatus', v.ConversionStatus
                ) ORDER BY v.Code, v.MeasuredUtc NULLS FIRST, v.PatientvaerdiId)
                FROM PLSP.Patientvaerdier AS v
                WHERE v.PatientId = d.PatientId AND coalesce(v.MeasuredUtc, v.ReceivedUtc) >= v_CutoffUtc
            ), '[]'::json),
            'diagnoses', coalesce((
                SELECT json_agg(json_build_object(
                    'code', x.Code, 'codeSystem', x.CodeSystem, 'diagnosedDate', x.DiagnosedDate, 'endedDate', x.EndedDate
                ) ORDER BY x.DiagnosedDate, x.DiagnoseId)
                FROM PLSP.Diagnose AS x
                WHERE x.PatientId = d.PatientId
            ), '[]'::json),
            'medication', coalesce((
                SELECT json_agg(json_build_object(
                    'atcCode', m.AtcCode, 'drugName', m.DrugName, 'startDate', m.StartDate, 'endDate', m.EndDate
                ) ORDER BY m.StartDate, m.MedicinId)
                FROM PLSP.Medicin AS m
                WHERE m.PatientId = d.PatientId
            ), '[]'::json),
            'services', coalesce((
                SELECT json_agg(json_build_object(
                    'serviceCode', y.ServiceCode, 'serviceDate', y.ServiceDate, 'clinicId', y.KlinikId
                ) ORDER BY y.ServiceDate, y.YdelseId)
                FROM PLSP.Ydelser AS y
                WHERE y.PatientId = d.PatientId
            ), '[]'::json),
            'properties', coalesce((
                SELECT json_agg(json_build_object(
                    'code', g.Code, 'value', g.Value, 'validFromUtc', g.ValidFromUtc, 'validToUtc', g.ValidToUtc
                ) ORDER BY g.ValidFromUtc, g.EgenskabId)
                FROM PLSP.Egenskaber AS g
                WHERE g.PatientId = d.PatientId
            ), '[]'::json)
        ) ORDER BY d.Id) FILTER (WHERE d.Kind = 'found'), '[]'::json)::text,
        count(*) FILTER (WHERE d.Kind = 'found'),
        count(*) FILTER (WHERE d.Kind = 'delivered'),
        string_agg(d.Id::text, ',' ORDER BY d.Id) FILTER (WHERE d.Kind = 'missing')
    INTO p_Documents, p_Found, p_AlreadyDelivered, p_Missing
    FROM classified AS d;
END;
$$;
