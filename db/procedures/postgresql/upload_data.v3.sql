-- Upload.upload_data, version 3.
-- UploadData (docs/http.md): one LPS (p_SorCode, p_Ydernummer: the clinic of
-- its token) uploads one or more patient documents as JSON
--   {"patients": [{"cpr", "givenName", "familyName",
--     "values": [{"code", "value", "unit", "time"}],
--     "diagnoses": [{"codeSystem", "code", "diagnosedDate", "endedDate"}],
--     "medication": [{"atcCode", "drugName", "startDate", "endDate"}],
--     "services": [{"serviceCode", "serviceDate"}],
--     "properties": [{"code", "value", "validFrom", "validTo"}]}]}
-- Dates are 'YYYY-MM-DD'; a value's time and value stay raw text for
-- ConvertPatientValues.
--
-- Validation is set-based, against the Relevant rows active at p_NowUtc
-- (NULL: now) and basic rules; every problem is collected with the document,
-- the field, the row (0-based) and a reason code:
--   cpr_format (not ten digits), cpr_date (DDMMYY with the century of the
--   seventh digit is no real date, or after now; replacement numbers with day
--   + 60 are accepted; modulus 11 is not checked: the CPR office has issued
--   numbers that fail it since 2007), duplicate_patient, missing, too_long,
--   unknown_code (no active Relevant row: RelevantVaerdi, a RelevantDiagnose
--   or RelevantMedicin prefix, RelevantYdelse, RelevantEgenskab),
--   unknown_code_system (ICPC2 or SKS), unknown_unit (neither the canonical
--   unit nor an active RelevantVaerdiEnhed), bad_date, future_date (after the
--   UTC date of now; properties may start later), before_birth, end_before_start,
--   duplicate_row (the same key twice in a document).
-- A document with any error writes nothing (atomic per document); the
-- others are written. Each row has a key within its patient (value: code and
-- time; diagnosis: code system, code, date; medication: ATC code and start;
-- service: code and date; property: code and start) and a SHA-256 content
-- hash: a new key is inserted, a changed hash updates the row (a value is
-- staged again for ConvertPatientValues, version 3 below), an unchanged row
-- is not written at all, so it marks no patient dirty. A new patient is created with the birth date and
-- sex of the CPR number.
-- The outcome goes to PLSP.Upload and the day's Ops.UploadStatistic and
-- Ops.UploadRejection rows. p_Execute = 'N' validates and counts, writes nothing.
-- p_Errors is a JSON array (at most 1000 entries); it never holds a CPR number.
-- Runs with the owner's rights; the caller's transaction makes it atomic.
--
-- Version 2 (issue 11, bulk jobs): with p_QueuedUploadId the call applies one
-- batch of a queued upload's staged documents for Job.upload_drain_batch: its
-- counts are added to that PLSP.Upload row, which stays queued (the drain
-- finishes it), its errors are left to the caller (who numbers the documents
-- as the whole upload did), and the day's statistics count its documents and
-- rows but not another upload (Upload.upload_enqueue counted it). A document
-- found unchanged as a whole is not expanded into rows at all, and no patient
-- row is even tried for it: an unchanged resync writes nothing but its
-- PLSP.Upload row and the day's statistics.
--
-- Version 3 (issue 9, migration 0023: conversion by insert): a new or
-- changed value goes to PLSP.Patientvaerdier_Pending, raw, where
-- ConvertPatientValues takes it (Job.convert_values_move). A value's key is
-- looked up in both tables (the pending one, then Patientvaerdier): an
-- unchanged row is a no-op wherever it is. A changed one is deleted from
-- whichever table holds it, the pending table first, and inserted into the
-- pending table, all in the caller's transaction (atomic per call, so per
-- document). A key is in at most one of the two tables: each has its unique
-- index on (PatientId, UploadKey); the uploads of one patient are serialised
-- by a lock on its PLSP.Patient row, taken before the keys are looked up; and
-- a conversion moves a row in one transaction, so the DELETE from the pending
-- table waits for a conversion holding the row and the DELETE from
-- Patientvaerdier that follows sees it converted.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: jsonb
-- functions read the document (T-SQL: OPENJSON); regular expressions check
-- dates (T-SQL: TRY_CONVERT with style 23); temporary tables (T-SQL:
-- #temp tables, which have statistics); ON CONFLICT for the statistics (T-SQL: UPDATE WITH (UPDLOCK,
-- HOLDLOCK) then INSERT WHERE NOT EXISTS).
CREATE PROCEDURE Upload.upload_data(
    p_SorCode varchar(20),
    p_Ydernummer varchar(10),
    p_Document text,
    p_NowUtc timestamp(3) DEFAULT NULL,
    p_Execute char(1) DEFAULT 'Y',
    p_QueuedUploadId bigint DEFAULT NULL,
    INOUT p_Result varchar(20) DEFAULT NULL,
    INOUT p_Documents integer DEFAULT NULL,
    INOUT p_RejectedDocuments integer DEFAULT NULL,
    INOUT p_Inserted integer DEFAULT NULL,
    INOUT p_Updated integer DEFAULT NULL,
    INOUT p_Unchanged integer DEFAULT NULL,
    INOUT p_Rejected integer DEFAULT NULL,
    INOUT p_Errors text DEFAULT NULL,
    INOUT p_UploadId bigint DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Now timestamp(3) := coalesce(p_NowUtc, date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC'));
    v_Today date;
    v_Json jsonb;
    v_KlinikId integer;
    v_Rows integer;
    v_Count integer;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; no transaction control here.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_SorCode IS NULL OR p_SorCode !~ '^[0-9]{1,20}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_SorCode is not supported: give the clinic''s SOR code (digits). ';
    END IF;
    IF p_Ydernummer IS NULL OR p_Ydernummer !~ '^[0-9]{1,10}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Ydernummer is not supported: give the clinic''s ydernummer (digits). ';
    END IF;
    IF p_Document IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_Document is not supported: give the upload as JSON. ';
    ELSE
        BEGIN
            v_Json := p_Document::jsonb;
        EXCEPTION WHEN OTHERS THEN
            v_Json := NULL;
        END;
        IF v_Json IS NULL OR jsonb_typeof(v_Json) <> 'object' OR jsonb_typeof(v_Json -> 'patients') <> 'array'
            OR jsonb_array_length(v_Json -> 'patients') NOT BETWEEN 1 AND 10000 THEN
            v_Errors := v_Errors || 'The value for the parameter p_Document is not supported: give a JSON object with "patients", 1 to 10000 documents. ';
        END IF;
    END IF;
    IF p_NowUtc IS NOT NULL AND (p_NowUtc < '2000-01-01' OR p_NowUtc > '9000-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_NowUtc is not supported: give a UTC time after 2000, or NULL for now. ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (write) or N (validate and count only). ';
    END IF;
    IF p_QueuedUploadId IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM PLSP.Upload AS u WHERE u.UploadId = p_QueuedUploadId AND u.SorCode = p_SorCode AND u.Status = 'queued'
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_QueuedUploadId is not supported: give a queued upload of this clinic, or NULL. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;
    v_Today := v_Now::date;

    ----------------------------------------------------------------------------
    -- Read the document: patients, then their rows in one shape
    ----------------------------------------------------------------------------
    DROP TABLE IF EXISTS pg_temp.upload_doc;
    CREATE TEMP TABLE upload_doc ON COMMIT DROP AS
    SELECT (d.ord - 1)::integer AS DocNo,
        d.doc ->> 'cpr' AS Cpr,
        d.doc ->> 'givenName' AS GivenName,
        d.doc ->> 'familyName' AS FamilyName,
        d.doc,
        NULL::date AS BirthDate,
        NULL::bigint AS PatientId,
        false AS Rejected,
        sha256(convert_to(d.doc::text, 'UTF8')) AS DocHash,
        false AS Unchanged
    FROM jsonb_array_elements(v_Json -> 'patients') WITH ORDINALITY AS d (doc, ord);

    -- A document identical to the patient's last accepted one is a no-op: not read further.
    -- The CPR as char(10), the column's type: bpchar = text would cast the column
    -- to text, and UQ_Patient_Cpr could not be used.
    UPDATE upload_doc AS d SET Unchanged = true
    FROM PLSP.Patient AS p
    WHERE p.Cpr = d.Cpr::char(10) AND length(d.Cpr) = 10 AND p.UploadDocumentHash = d.DocHash
        AND NOT EXISTS (SELECT 1 FROM upload_doc AS e WHERE e.Cpr = d.Cpr AND e.DocNo <> d.DocNo);

    -- CPR DDMMYY (day + 60: a replacement number) with the century from the seventh digit.
    UPDATE upload_doc AS d
    SET BirthDate = CASE
            WHEN b.Y IS NOT NULL AND b.M BETWEEN 1 AND 12 AND b.D BETWEEN 1 AND 31
                AND b.D <= extract(DAY FROM make_date(b.Y, b.M, 1) + interval '1 month' - interval '1 day')
                THEN make_date(b.Y, b.M, b.D)
        END
    FROM (
        SELECT x.DocNo,
            CASE WHEN substr(x.Cpr, 1, 2)::integer > 60 THEN substr(x.Cpr, 1, 2)::integer - 60
                ELSE substr(x.Cpr, 1, 2)::integer END AS D,
            substr(x.Cpr, 3, 2)::integer AS M,
            substr(x.Cpr, 5, 2)::integer + CASE
                WHEN substr(x.Cpr, 7, 1) IN ('0', '1', '2', '3') THEN 1900
                WHEN substr(x.Cpr, 7, 1) IN ('4', '9') THEN CASE WHEN substr(x.Cpr, 5, 2)::integer <= 36 THEN 2000 ELSE 1900 END
                ELSE CASE WHEN substr(x.Cpr, 5, 2)::integer <= 57 THEN 2000 ELSE 1800 END
            END AS Y
        FROM upload_doc AS x
        WHERE x.Cpr ~ '^[0-9]{10}$'
    ) AS b
    WHERE b.DocNo = d.DocNo;

    DROP TABLE IF EXISTS pg_temp.upload_row;
    CREATE TEMP TABLE upload_row ON COMMIT DROP AS
    WITH raw AS (
        SELECT d.DocNo, 'V'::char(1) AS Kind, 'values' AS ListName, (r.ord - 1)::integer AS RowNo,
            r.j ->> 'code' AS Code, NULL::text AS CodeSystem, r.j ->> 'value' AS Value, r.j ->> 'unit' AS Unit,
            r.j ->> 'time' AS TimeText, NULL::text AS Date1Text, NULL::text AS Date2Text, NULL::text AS Name
        FROM upload_doc AS d
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN NOT d.Unchanged AND jsonb_typeof(d.doc -> 'values') = 'array' THEN d.doc -> 'values' ELSE '[]'::jsonb END) WITH ORDINALITY AS r (j, ord)
        UNION ALL
        SELECT d.DocNo, 'D', 'diagnoses', (r.ord - 1)::integer,
            r.j ->> 'code', r.j ->> 'codeSystem', NULL, NULL, NULL, r.j ->> 'diagnosedDate', r.j ->> 'endedDate', NULL
        FROM upload_doc AS d
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN NOT d.Unchanged AND jsonb_typeof(d.doc -> 'diagnoses') = 'array' THEN d.doc -> 'diagnoses' ELSE '[]'::jsonb END) WITH ORDINALITY AS r (j, ord)
        UNION ALL
        SELECT d.DocNo, 'M', 'medication', (r.ord - 1)::integer,
            r.j ->> 'atcCode', NULL, NULL, NULL, NULL, r.j ->> 'startDate', r.j ->> 'endDate', r.j ->> 'drugName'
        FROM upload_doc AS d
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN NOT d.Unchanged AND jsonb_typeof(d.doc -> 'medication') = 'array' THEN d.doc -> 'medication' ELSE '[]'::jsonb END) WITH ORDINALITY AS r (j, ord)
        UNION ALL
        SELECT d.DocNo, 'S', 'services', (r.ord - 1)::integer,
            r.j ->> 'serviceCode', NULL, NULL, NULL, NULL, r.j ->> 'serviceDate', NULL, NULL
        FROM upload_doc AS d
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN NOT d.Unchanged AND jsonb_typeof(d.doc -> 'services') = 'array' THEN d.doc -> 'services' ELSE '[]'::jsonb END) WITH ORDINALITY AS r (j, ord)
        UNION ALL
        SELECT d.DocNo, 'P', 'properties', (r.ord - 1)::integer,
            r.j ->> 'code', NULL, r.j ->> 'value', NULL, NULL, r.j ->> 'validFrom', r.j ->> 'validTo', NULL
        FROM upload_doc AS d
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN NOT d.Unchanged AND jsonb_typeof(d.doc -> 'properties') = 'array' THEN d.doc -> 'properties' ELSE '[]'::jsonb END) WITH ORDINALITY AS r (j, ord)
    )
    SELECT r.*,
        CASE WHEN r.Date1Text ~ '^(1[89]|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' THEN
            CASE WHEN substr(r.Date1Text, 9, 2)::integer <= extract(DAY FROM make_date(substr(r.Date1Text, 1, 4)::integer,
                substr(r.Date1Text, 6, 2)::integer, 1) + interval '1 month' - interval '1 day')
                THEN r.Date1Text::date END
        END AS Date1,
        CASE WHEN r.Date2Text ~ '^(1[89]|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' THEN
            CASE WHEN substr(r.Date2Text, 9, 2)::integer <= extract(DAY FROM make_date(substr(r.Date2Text, 1, 4)::integer,
                substr(r.Date2Text, 6, 2)::integer, 1) + interval '1 month' - interval '1 day')
                THEN r.Date2Text::date END
        END AS Date2,
        CASE r.Kind
            WHEN 'V' THEN concat_ws('|', r.Code, r.TimeText)
            WHEN 'D' THEN concat_ws('|', r.CodeSystem, r.Code, r.Date1Text)
            ELSE concat_ws('|', r.Code, r.Date1Text)
        END AS UploadKey,
        sha256(convert_to(concat_ws(chr(31), r.Kind, coalesce(r.Code, chr(30)), coalesce(r.CodeSystem, chr(30)),
            coalesce(r.Value, chr(30)), coalesce(r.Unit, chr(30)), coalesce(r.TimeText, chr(30)),
            coalesce(r.Date1Text, chr(30)), coalesce(r.Date2Text, chr(30)), coalesce(r.Name, chr(30))), 'UTF8')) AS ContentHash,
        CASE r.Kind WHEN 'M' THEN 'atcCode' WHEN 'S' THEN 'serviceCode' ELSE 'code' END AS CodeField,
        CASE r.Kind WHEN 'D' THEN 'diagnosedDate' WHEN 'M' THEN 'startDate' WHEN 'S' THEN 'serviceDate' ELSE 'validFrom' END AS Date1Field,
        CASE r.Kind WHEN 'D' THEN 'endedDate' WHEN 'M' THEN 'endDate' ELSE 'validTo' END AS Date2Field,
        CASE r.Kind WHEN 'V' THEN 20 WHEN 'P' THEN 20 WHEN 'S' THEN 4 ELSE 10 END AS CodeMax
    FROM raw AS r
    WHERE NOT EXISTS (SELECT 1 FROM upload_doc AS u WHERE u.DocNo = r.DocNo AND u.Unchanged);

    ----------------------------------------------------------------------------
    -- Validate, set-based: every problem at once
    ----------------------------------------------------------------------------
    DROP TABLE IF EXISTS pg_temp.upload_error;
    CREATE TEMP TABLE upload_error ON COMMIT DROP AS
    -- Patients
    SELECT d.DocNo, 'cpr'::text AS Field, NULL::integer AS RowNo, 'cpr_format'::varchar(30) AS Reason,
        'the CPR number must be ten digits'::text AS Message
    FROM upload_doc AS d WHERE d.Cpr IS NULL OR d.Cpr !~ '^[0-9]{10}$'
    UNION ALL
    SELECT d.DocNo, 'cpr', NULL, 'cpr_date', 'the CPR number''s birth date is no real date or lies in the future'
    FROM upload_doc AS d WHERE d.Cpr ~ '^[0-9]{10}$' AND (d.BirthDate IS NULL OR d.BirthDate > v_Today)
    UNION ALL
    SELECT d.DocNo, 'cpr', NULL, 'duplicate_patient', 'the same patient is in an earlier document of this upload'
    FROM upload_doc AS d
    WHERE EXISTS (SELECT 1 FROM upload_doc AS e WHERE e.Cpr = d.Cpr AND e.DocNo < d.DocNo)
    UNION ALL
    SELECT d.DocNo, x.Field, NULL, 'too_long', 'at most 100 characters'
    FROM upload_doc AS d
    CROSS JOIN LATERAL (VALUES ('givenName', d.GivenName), ('familyName', d.FamilyName)) AS x (Field, Val)
    WHERE length(x.Val) > 100
    -- Rows: required and length
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || r.CodeField, r.RowNo, 'missing', 'a code is required'
    FROM upload_row AS r WHERE coalesce(btrim(r.Code), '') = ''
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || r.CodeField, r.RowNo, 'too_long', 'at most ' || r.CodeMax || ' characters'
    FROM upload_row AS r WHERE length(r.Code) > r.CodeMax
    UNION ALL
    SELECT r.DocNo, r.ListName || '.time', r.RowNo, 'missing', 'the time of the measurement is required'
    FROM upload_row AS r WHERE r.Kind = 'V' AND coalesce(btrim(r.TimeText), '') = ''
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || x.Field, r.RowNo, 'too_long', 'at most ' || x.MaxLength || ' characters'
    FROM upload_row AS r
    CROSS JOIN LATERAL (VALUES ('value', r.Value, 100), ('unit', r.Unit, 20), ('time', r.TimeText, 40),
        ('drugName', r.Name, 200), ('codeSystem', r.CodeSystem, 10)) AS x (Field, Val, MaxLength)
    WHERE length(x.Val) > x.MaxLength
    -- Rows: codes known (Relevant rows active at now)
    UNION ALL
    SELECT r.DocNo, r.ListName || '.codeSystem', r.RowNo, 'unknown_code_system', 'use ICPC2 or SKS'
    FROM upload_row AS r WHERE r.Kind = 'D' AND (r.CodeSystem IS NULL OR r.CodeSystem NOT IN ('ICPC2', 'SKS'))
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || r.CodeField, r.RowNo, 'unknown_code', 'the code is not in the Relevant tables'
    FROM upload_row AS r
    WHERE coalesce(btrim(r.Code), '') <> '' AND NOT (r.Kind = 'D' AND (r.CodeSystem IS NULL OR r.CodeSystem NOT IN ('ICPC2', 'SKS')))
        AND NOT CASE r.Kind
            WHEN 'V' THEN EXISTS (SELECT 1 FROM PLSP.RelevantVaerdi AS a WHERE a.Code = r.Code
                AND a.ActiveFromUtc <= v_Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > v_Now))
            WHEN 'D' THEN EXISTS (SELECT 1 FROM PLSP.RelevantDiagnose AS a WHERE a.CodeSystem = r.CodeSystem
                AND r.Code LIKE a.Code || '%' AND a.ActiveFromUtc <= v_Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > v_Now))
            WHEN 'M' THEN EXISTS (SELECT 1 FROM PLSP.RelevantMedicin AS a WHERE r.Code LIKE a.AtcPrefix || '%'
                AND a.ActiveFromUtc <= v_Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > v_Now))
            WHEN 'S' THEN EXISTS (SELECT 1 FROM PLSP.RelevantYdelse AS a WHERE a.ServiceCode = r.Code
                AND a.ActiveFromUtc <= v_Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > v_Now))
            ELSE EXISTS (SELECT 1 FROM PLSP.RelevantEgenskab AS a WHERE a.Code = r.Code
                AND a.ActiveFromUtc <= v_Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > v_Now))
        END
    -- Rows: units accepted
    UNION ALL
    SELECT r.DocNo, r.ListName || '.unit', r.RowNo, 'unknown_unit', 'neither the analysis''s unit nor an accepted one'
    FROM upload_row AS r
    WHERE r.Kind = 'V' AND coalesce(btrim(r.Unit), '') <> ''
        AND EXISTS (SELECT 1 FROM PLSP.RelevantVaerdi AS a WHERE a.Code = r.Code
            AND a.ActiveFromUtc <= v_Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > v_Now))
        AND NOT EXISTS (SELECT 1 FROM PLSP.RelevantVaerdi AS a WHERE a.Code = r.Code AND lower(a.Unit) = lower(btrim(r.Unit))
            AND a.ActiveFromUtc <= v_Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > v_Now))
        AND NOT EXISTS (SELECT 1 FROM PLSP.RelevantVaerdiEnhed AS u WHERE u.Code = r.Code AND lower(u.Unit) = lower(btrim(r.Unit))
            AND u.ActiveFromUtc <= v_Now AND (u.ActiveToUtc IS NULL OR u.ActiveToUtc > v_Now))
    -- Rows: dates plausible
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || r.Date1Field, r.RowNo,
        CASE WHEN coalesce(r.Date1Text, '') = '' THEN 'missing' ELSE 'bad_date' END, 'give a real date as YYYY-MM-DD'
    FROM upload_row AS r WHERE r.Kind <> 'V' AND r.Date1 IS NULL
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || r.Date2Field, r.RowNo, 'bad_date', 'give a real date as YYYY-MM-DD, or null'
    FROM upload_row AS r WHERE r.Kind IN ('D', 'M', 'P') AND r.Date2Text IS NOT NULL AND r.Date2 IS NULL
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || r.Date1Field, r.RowNo, 'future_date', 'the date lies after today'
    FROM upload_row AS r WHERE r.Kind IN ('D', 'M', 'S') AND r.Date1 > v_Today
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || r.Date1Field, r.RowNo, 'before_birth', 'the date lies before the patient''s birth'
    FROM upload_row AS r INNER JOIN upload_doc AS d ON d.DocNo = r.DocNo
    WHERE r.Date1 < d.BirthDate
    UNION ALL
    SELECT r.DocNo, r.ListName || '.' || r.Date2Field, r.RowNo, 'end_before_start', 'the end lies before the start'
    FROM upload_row AS r WHERE r.Date2 < r.Date1
    -- Rows: one row per key and patient
    UNION ALL
    SELECT r.DocNo, r.ListName, r.RowNo, 'duplicate_row', 'the same row (key ' || r.UploadKey || ') is earlier in the document'
    FROM upload_row AS r
    WHERE EXISTS (SELECT 1 FROM upload_row AS e WHERE e.DocNo = r.DocNo AND e.Kind = r.Kind
        AND e.UploadKey = r.UploadKey AND e.RowNo < r.RowNo);

    UPDATE upload_doc AS d SET Rejected = true
    WHERE EXISTS (SELECT 1 FROM upload_error AS e WHERE e.DocNo = d.DocNo);

    ----------------------------------------------------------------------------
    -- Do the work: patients, then rows new or changed; unchanged rows untouched
    ----------------------------------------------------------------------------
    SELECT k.KlinikId INTO v_KlinikId FROM PLSP.Klinik AS k WHERE k.SorCode = p_SorCode;
    IF p_Execute = 'Y' AND v_KlinikId IS NULL THEN
        -- Two first uploads of a clinic at once: one inserts, the other finds it.
        INSERT INTO PLSP.Klinik (SorCode, Ydernummer, Name)
        VALUES (p_SorCode, p_Ydernummer, 'SOR ' || p_SorCode)
        ON CONFLICT (SorCode) DO NOTHING;
        SELECT k.KlinikId INTO v_KlinikId FROM PLSP.Klinik AS k WHERE k.SorCode = p_SorCode;
    END IF;

    IF p_Execute = 'Y' THEN
        INSERT INTO PLSP.Patient (Cpr, KlinikId, GivenName, FamilyName, BirthDate, Sex)
        SELECT d.Cpr, v_KlinikId, coalesce(d.GivenName, ''), coalesce(d.FamilyName, ''), d.BirthDate,
            CASE WHEN substr(d.Cpr, 10, 1)::integer % 2 = 1 THEN 'M' ELSE 'F' END
        FROM upload_doc AS d
        WHERE NOT d.Rejected AND NOT d.Unchanged
        ON CONFLICT (Cpr) DO NOTHING;
    END IF;
    UPDATE upload_doc AS d SET PatientId = p.PatientId
    FROM PLSP.Patient AS p WHERE p.Cpr = d.Cpr::char(10) AND NOT d.Rejected;

    -- The uploads of one patient, one at a time (version 3): the keys read
    -- below stay true until this transaction ends. The same rows the last
    -- step updates, locked in id order.
    IF p_Execute = 'Y' THEN
        PERFORM 1
        FROM PLSP.Patient AS p
        WHERE p.PatientId IN (SELECT d.PatientId FROM upload_doc AS d WHERE NOT d.Rejected AND NOT d.Unchanged)
        ORDER BY p.PatientId
        FOR NO KEY UPDATE OF p;
    END IF;

    DROP TABLE IF EXISTS pg_temp.upload_apply;
    CREATE TEMP TABLE upload_apply ON COMMIT DROP AS
    SELECT r.*, d.PatientId,
        CASE r.Kind
            -- a value pending or converted (version 3)
            WHEN 'V' THEN coalesce(
                (SELECT t.ContentHash FROM PLSP.Patientvaerdier_Pending AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey),
                (SELECT t.ContentHash FROM PLSP.Patientvaerdier AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey))
            WHEN 'D' THEN (SELECT t.ContentHash FROM PLSP.Diagnose AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
            WHEN 'M' THEN (SELECT t.ContentHash FROM PLSP.Medicin AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
            WHEN 'S' THEN (SELECT t.ContentHash FROM PLSP.Ydelser AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
            ELSE (SELECT t.ContentHash FROM PLSP.Egenskaber AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
        END AS StoredHash
    FROM upload_row AS r
    INNER JOIN upload_doc AS d ON d.DocNo = r.DocNo
    WHERE NOT d.Rejected;

    SELECT count(*) FILTER (WHERE a.StoredHash IS NULL AND a.PatientId IS NOT NULL) + count(*) FILTER (WHERE a.PatientId IS NULL),
        count(*) FILTER (WHERE a.StoredHash IS NOT NULL AND a.StoredHash <> a.ContentHash),
        count(*) FILTER (WHERE a.StoredHash = a.ContentHash)
    INTO p_Inserted, p_Updated, p_Unchanged
    FROM upload_apply AS a;
    -- Plus the rows of the documents found unchanged as a whole.
    SELECT p_Unchanged + coalesce(sum(
        coalesce(jsonb_array_length(CASE WHEN jsonb_typeof(d.doc -> 'values') = 'array' THEN d.doc -> 'values' END), 0)
        + coalesce(jsonb_array_length(CASE WHEN jsonb_typeof(d.doc -> 'diagnoses') = 'array' THEN d.doc -> 'diagnoses' END), 0)
        + coalesce(jsonb_array_length(CASE WHEN jsonb_typeof(d.doc -> 'medication') = 'array' THEN d.doc -> 'medication' END), 0)
        + coalesce(jsonb_array_length(CASE WHEN jsonb_typeof(d.doc -> 'services') = 'array' THEN d.doc -> 'services' END), 0)
        + coalesce(jsonb_array_length(CASE WHEN jsonb_typeof(d.doc -> 'properties') = 'array' THEN d.doc -> 'properties' END), 0)
    ), 0)::integer
    INTO p_Unchanged
    FROM upload_doc AS d
    WHERE d.Unchanged;

    IF p_Execute = 'Y' THEN
        -- Values: raw text kept, staged for ConvertPatientValues. A changed one
        -- leaves the table that holds it first: the pending table (waiting for
        -- a conversion that holds the row), then Patientvaerdier (where that
        -- conversion put it).
        DELETE FROM PLSP.Patientvaerdier_Pending AS t
        USING upload_apply AS a
        WHERE a.Kind = 'V' AND a.StoredHash <> a.ContentHash AND t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey;
        DELETE FROM PLSP.Patientvaerdier AS t
        USING upload_apply AS a
        WHERE a.Kind = 'V' AND a.StoredHash <> a.ContentHash AND t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey;
        INSERT INTO PLSP.Patientvaerdier_Pending (PatientId, Code, RawValue, RawTime, Unit, ReceivedUtc, UploadKey, ContentHash)
        SELECT a.PatientId, a.Code, a.Value, a.TimeText, nullif(btrim(a.Unit), ''), v_Now, a.UploadKey, a.ContentHash
        FROM upload_apply AS a WHERE a.Kind = 'V' AND (a.StoredHash IS NULL OR a.StoredHash <> a.ContentHash);

        UPDATE PLSP.Diagnose AS t
        SET EndedDate = a.Date2, ReceivedUtc = v_Now, ContentHash = a.ContentHash
        FROM upload_apply AS a
        WHERE a.Kind = 'D' AND a.StoredHash <> a.ContentHash AND t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey;
        INSERT INTO PLSP.Diagnose (PatientId, Code, CodeSystem, DiagnosedDate, EndedDate, ReceivedUtc, UploadKey, ContentHash)
        SELECT a.PatientId, a.Code, a.CodeSystem, a.Date1, a.Date2, v_Now, a.UploadKey, a.ContentHash
        FROM upload_apply AS a WHERE a.Kind = 'D' AND a.StoredHash IS NULL;

        UPDATE PLSP.Medicin AS t
        SET DrugName = a.Name, EndDate = a.Date2, ReceivedUtc = v_Now, ContentHash = a.ContentHash
        FROM upload_apply AS a
        WHERE a.Kind = 'M' AND a.StoredHash <> a.ContentHash AND t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey;
        INSERT INTO PLSP.Medicin (PatientId, AtcCode, DrugName, StartDate, EndDate, ReceivedUtc, UploadKey, ContentHash)
        SELECT a.PatientId, a.Code, a.Name, a.Date1, a.Date2, v_Now, a.UploadKey, a.ContentHash
        FROM upload_apply AS a WHERE a.Kind = 'M' AND a.StoredHash IS NULL;

        INSERT INTO PLSP.Ydelser (PatientId, KlinikId, ServiceCode, ServiceDate, ReceivedUtc, UploadKey, ContentHash)
        SELECT a.PatientId, v_KlinikId, a.Code, a.Date1, v_Now, a.UploadKey, a.ContentHash
        FROM upload_apply AS a WHERE a.Kind = 'S' AND a.StoredHash IS NULL;

        UPDATE PLSP.Egenskaber AS t
        SET Value = a.Value, ValidToUtc = a.Date2, ContentHash = a.ContentHash
        FROM upload_apply AS a
        WHERE a.Kind = 'P' AND a.StoredHash <> a.ContentHash AND t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey;
        INSERT INTO PLSP.Egenskaber (PatientId, Code, Value, ValidFromUtc, ValidToUtc, UploadKey, ContentHash)
        SELECT a.PatientId, a.Code, a.Value, a.Date1, a.Date2, a.UploadKey, a.ContentHash
        FROM upload_apply AS a WHERE a.Kind = 'P' AND a.StoredHash IS NULL;

        -- The accepted documents' hashes, for the next resync (Patient has no dirty-mark trigger).
        UPDATE PLSP.Patient AS p SET UploadDocumentHash = d.DocHash
        FROM upload_doc AS d
        WHERE p.PatientId = d.PatientId AND NOT d.Rejected AND NOT d.Unchanged
            AND p.UploadDocumentHash IS DISTINCT FROM d.DocHash;
    END IF;

    ----------------------------------------------------------------------------
    -- Outcome, statistics
    ----------------------------------------------------------------------------
    SELECT count(*), count(*) FILTER (WHERE d.Rejected) INTO p_Documents, p_RejectedDocuments FROM upload_doc AS d;
    SELECT count(*) INTO p_Rejected
    FROM upload_row AS r INNER JOIN upload_doc AS d ON d.DocNo = r.DocNo WHERE d.Rejected;
    SELECT coalesce(jsonb_agg(jsonb_build_object('document', e.DocNo, 'field', e.Field, 'row', e.RowNo,
            'reason', e.Reason, 'message', e.Message) ORDER BY e.DocNo, e.RowNo NULLS FIRST, e.Field), '[]'::jsonb)::text
    INTO p_Errors
    FROM (SELECT * FROM upload_error ORDER BY DocNo, RowNo NULLS FIRST, Field LIMIT 1000) AS e;
    p_Result := CASE WHEN p_Execute = 'N' THEN 'dry_run' WHEN p_RejectedDocuments = 0 THEN 'accepted'
        WHEN p_RejectedDocuments = p_Documents THEN 'rejected' ELSE 'partly_accepted' END;

    IF p_Execute = 'Y' THEN
        IF p_QueuedUploadId IS NULL THEN
            INSERT INTO PLSP.Upload (SorCode, Ydernummer, ReceivedUtc, FinishedUtc, Status, Documents, RejectedDocuments,
                RowsInserted, RowsUpdated, RowsUnchanged, RowsRejected, Errors)
            VALUES (p_SorCode, p_Ydernummer, v_Now, v_Now, 'done', p_Documents, p_RejectedDocuments,
                p_Inserted, p_Updated, p_Unchanged, p_Rejected, p_Errors)
            RETURNING UploadId INTO p_UploadId;
        ELSE
            -- One batch of a queued upload: added to its row, which stays queued.
            UPDATE PLSP.Upload AS u
            SET Documents = u.Documents + p_Documents, RejectedDocuments = u.RejectedDocuments + p_RejectedDocuments,
                RowsInserted = u.RowsInserted + p_Inserted, RowsUpdated = u.RowsUpdated + p_Updated,
                RowsUnchanged = u.RowsUnchanged + p_Unchanged, RowsRejected = u.RowsRejected + p_Rejected
            WHERE u.UploadId = p_QueuedUploadId;
            p_UploadId := p_QueuedUploadId;
        END IF;

        INSERT INTO Ops.UploadStatistic AS s (SorCode, DayUtc, Uploads, Documents, RejectedDocuments,
            RowsInserted, RowsUpdated, RowsUnchanged, RowsRejected)
        VALUES (p_SorCode, v_Today, CASE WHEN p_QueuedUploadId IS NULL THEN 1 ELSE 0 END, p_Documents, p_RejectedDocuments, p_Inserted, p_Updated, p_Unchanged, p_Rejected)
        ON CONFLICT (SorCode, DayUtc) DO UPDATE
        SET Uploads = s.Uploads + EXCLUDED.Uploads, Documents = s.Documents + EXCLUDED.Documents,
            RejectedDocuments = s.RejectedDocuments + EXCLUDED.RejectedDocuments,
            RowsInserted = s.RowsInserted + EXCLUDED.RowsInserted, RowsUpdated = s.RowsUpdated + EXCLUDED.RowsUpdated,
            RowsUnchanged = s.RowsUnchanged + EXCLUDED.RowsUnchanged, RowsRejected = s.RowsRejected + EXCLUDED.RowsRejected;

        INSERT INTO Ops.UploadRejection AS s (SorCode, DayUtc, Reason, RowsRejected)
        SELECT p_SorCode, v_Today, e.Reason, count(*)
        FROM upload_error AS e
        GROUP BY e.Reason
        ON CONFLICT (SorCode, DayUtc, Reason) DO UPDATE SET RowsRejected = s.RowsRejected + EXCLUDED.RowsRejected;
    END IF;
END;
$$;
