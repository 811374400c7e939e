-- Upload.upload_data, version 1.
-- UploadData (docs/http.md): one LPS (@SorCode, @Ydernummer: the clinic of
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
-- Validation is set-based, against the Relevant rows active at @NowUtc
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
-- hash: a new key is inserted, a changed hash updates the row (a value goes
-- back to ConversionStatus 0), an unchanged row is not written at all, so it
-- marks no patient dirty. A new patient is created with the birth date and
-- sex of the CPR number.
-- The outcome goes to PLSP.Upload and the day's Ops.UploadStatistic and
-- Ops.UploadRejection rows. @Execute = 'N' validates and counts, writes nothing.
-- @Errors is a JSON array (at most 1000 entries); it never holds a CPR number.
-- One transaction; ownership chaining reaches the tables for flp_lps.
--
-- Differences from the PostgreSQL twin: OPENJSON reads the document (the
-- twin: jsonb functions); TRY_CONVERT with style 23 checks dates (the twin:
-- regular expressions); #temp tables; the statistics are upserted with
-- UPDATE WITH (UPDLOCK, HOLDLOCK) then INSERT WHERE NOT EXISTS (the twin: ON
-- CONFLICT); code comparisons follow the database's collation.
CREATE OR ALTER PROCEDURE Upload.upload_data
    @SorCode varchar(20),
    @Ydernummer varchar(10),
    @Document nvarchar(MAX),
    @NowUtc datetime2(3) = NULL,
    @Execute char(1) = 'Y',
    @QueuedUploadId bigint = NULL,
    @Result varchar(20) = NULL OUTPUT,
    @Documents int = NULL OUTPUT,
    @RejectedDocuments int = NULL OUTPUT,
    @Inserted int = NULL OUTPUT,
    @Updated int = NULL OUTPUT,
    @Unchanged int = NULL OUTPUT,
    @Rejected int = NULL OUTPUT,
    @Errors nvarchar(MAX) = NULL OUTPUT,
    @UploadId bigint = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @ParameterErrors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = COALESCE(@NowUtc, SYSUTCDATETIME());
    DECLARE @Today date = CAST(COALESCE(@NowUtc, SYSUTCDATETIME()) AS date);
    DECLARE @KlinikId int;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @SorCode IS NULL OR @SorCode = '' OR @SorCode COLLATE Latin1_General_BIN2 LIKE '%[^0-9]%'
        SET @ParameterErrors += N'The value for the parameter @SorCode is not supported: give the clinic''s SOR code (digits). ';
    IF @Ydernummer IS NULL OR @Ydernummer = '' OR @Ydernummer COLLATE Latin1_General_BIN2 LIKE '%[^0-9]%'
        SET @ParameterErrors += N'The value for the parameter @Ydernummer is not supported: give the clinic''s ydernummer (digits). ';
    IF @Document IS NULL
        SET @ParameterErrors += N'The value for the parameter @Document is not supported: give the upload as JSON. ';
    ELSE IF ISJSON(@Document) <> 1 OR LEFT(LTRIM(@Document), 1) <> N'{'
        OR JSON_QUERY(@Document, '$.patients') IS NULL OR LEFT(JSON_QUERY(@Document, '$.patients'), 1) <> N'['
        OR (SELECT COUNT(*) FROM OPENJSON(@Document, '$.patients')) NOT BETWEEN 1 AND 10000
        SET @ParameterErrors += N'The value for the parameter @Document is not supported: give a JSON object with "patients", 1 to 10000 documents. ';
    IF @NowUtc IS NOT NULL AND (@NowUtc < '2000-01-01' OR @NowUtc > '9000-01-01')
        SET @ParameterErrors += N'The value for the parameter @NowUtc is not supported: give a UTC time after 2000, or NULL for now. ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @ParameterErrors += N'The value for the parameter @Execute is not supported: use Y (write) or N (validate and count only). ';
    IF @QueuedUploadId IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM PLSP.Upload AS u WHERE u.UploadId = @QueuedUploadId AND u.SorCode = @SorCode AND u.Status = 'queued'
    )
        SET @ParameterErrors += N'The value for the parameter @QueuedUploadId is not supported: give a queued upload of this clinic, or NULL. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @ParameterErrors <> N''
        THROW 50001, @ParameterErrors, 1;

    ----------------------------------------------------------------------------
    -- Read the document: patients, then their rows in one shape
    ----------------------------------------------------------------------------
    CREATE TABLE #UploadDoc (
        DocNo int NOT NULL PRIMARY KEY,
        Cpr nvarchar(4000) NULL,
        GivenName nvarchar(4000) NULL,
        FamilyName nvarchar(4000) NULL,
        BirthDate date NULL,
        PatientId bigint NULL,
        Rejected bit NOT NULL DEFAULT (0),
        DocHash binary(32) NULL,
        Unchanged bit NOT NULL DEFAULT (0),
        ValuesJson nvarchar(MAX) NULL,
        DiagnosesJson nvarchar(MAX) NULL,
        MedicationJson nvarchar(MAX) NULL,
        ServicesJson nvarchar(MAX) NULL,
        PropertiesJson nvarchar(MAX) NULL
    );
    INSERT INTO #UploadDoc (
        DocNo, Cpr, GivenName, FamilyName, ValuesJson, DiagnosesJson, MedicationJson, ServicesJson, PropertiesJson, DocHash
    )
    SELECT CAST(p.[key] AS int), j.Cpr, j.GivenName, j.FamilyName, j.ValuesJson, j.DiagnosesJson, j.MedicationJson,
        j.ServicesJson, j.PropertiesJson, HASHBYTES('SHA2_256', p.value)
    FROM OPENJSON(@Document, '$.patients') AS p
    OUTER APPLY OPENJSON(CASE WHEN p.type = 5 THEN p.value END) WITH (
        Cpr nvarchar(4000) '$.cpr',
        GivenName nvarchar(4000) '$.givenName',
        FamilyName nvarchar(4000) '$.familyName',
        ValuesJson nvarchar(MAX) '$.values' AS JSON,
        DiagnosesJson nvarchar(MAX) '$.diagnoses' AS JSON,
        MedicationJson nvarchar(MAX) '$.medication' AS JSON,
        ServicesJson nvarchar(MAX) '$.services' AS JSON,
        PropertiesJson nvarchar(MAX) '$.properties' AS JSON
    ) AS j;

    -- A document identical to the patient's last accepted one is a no-op: not read further.
    UPDATE d SET Unchanged = 1
    FROM #UploadDoc AS d
    INNER JOIN PLSP.Patient AS p ON d.Cpr = p.Cpr
    WHERE p.UploadDocumentHash = d.DocHash
        AND NOT EXISTS (SELECT 1 FROM #UploadDoc AS e WHERE e.Cpr = d.Cpr AND e.DocNo <> d.DocNo);

    -- CPR DDMMYY (day + 60: a replacement number) with the century from the seventh digit.
    UPDATE d
    SET BirthDate = TRY_CONVERT(date, CONCAT(b.Y, '-', SUBSTRING(d.Cpr, 3, 2), '-', RIGHT(CONCAT('0', b.D), 2)), 23)
    FROM #UploadDoc AS d
    CROSS APPLY (
        SELECT CASE WHEN CAST(SUBSTRING(d.Cpr, 1, 2) AS int) > 60 THEN CAST(SUBSTRING(d.Cpr, 1, 2) AS int) - 60
                ELSE CAST(SUBSTRING(d.Cpr, 1, 2) AS int) END AS D,
            CAST(SUBSTRING(d.Cpr, 5, 2) AS int) + CASE
                WHEN SUBSTRING(d.Cpr, 7, 1) IN ('0', '1', '2', '3') THEN 1900
                WHEN SUBSTRING(d.Cpr, 7, 1) IN ('4', '9') THEN CASE WHEN CAST(SUBSTRING(d.Cpr, 5, 2) AS int) <= 36 THEN 2000 ELSE 1900 END
                WHEN CAST(SUBSTRING(d.Cpr, 5, 2) AS int) <= 57 THEN 2000
                ELSE 1800
            END AS Y
    ) AS b
    WHERE d.Cpr COLLATE Latin1_General_BIN2 LIKE '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]';

    CREATE TABLE #UploadRow (
        DocNo int NOT NULL,
        Kind char(1) NOT NULL,
        ListName varchar(20) NOT NULL,
        RowNo int NOT NULL,
        Code nvarchar(4000) NULL,
        CodeSystem nvarchar(4000) NULL,
        Value nvarchar(4000) NULL,
        Unit nvarchar(4000) NULL,
        TimeText nvarchar(4000) NULL,
        Date1Text nvarchar(4000) NULL,
        Date2Text nvarchar(4000) NULL,
        Name nvarchar(4000) NULL,
        Date1 date NULL,
        Date2 date NULL,
        UploadKey nvarchar(4000) NULL,
        ContentHash binary(32) NULL,
        CodeField varchar(20) NULL,
        Date1Field varchar(20) NULL,
        Date2Field varchar(20) NULL,
        CodeMax int NULL
    );
    INSERT INTO #UploadRow (DocNo, Kind, ListName, RowNo, Code, CodeSystem, Value, Unit, TimeText, Date1Text, Date2Text, Name)
    SELECT d.DocNo, 'V', 'values', CAST(r.[key] AS int), j.Code, NULL, j.Value, j.Unit, j.TimeText, NULL, NULL, NULL
    FROM #UploadDoc AS d
    CROSS APPLY OPENJSON(CASE WHEN d.Unchanged = 0 AND LEFT(d.ValuesJson, 1) = N'[' THEN d.ValuesJson ELSE N'[]' END) AS r
    OUTER APPLY OPENJSON(CASE WHEN r.type = 5 THEN r.value END) WITH (
        Code nvarchar(4000) '$.code', Value nvarchar(4000) '$.value', Unit nvarchar(4000) '$.unit', TimeText nvarchar(4000) '$.time'
    ) AS j
    UNION ALL
    SELECT d.DocNo, 'D', 'diagnoses', CAST(r.[key] AS int), j.Code, j.CodeSystem, NULL, NULL, NULL, j.Date1Text, j.Date2Text, NULL
    FROM #UploadDoc AS d
    CROSS APPLY OPENJSON(CASE WHEN d.Unchanged = 0 AND LEFT(d.DiagnosesJson, 1) = N'[' THEN d.DiagnosesJson ELSE N'[]' END) AS r
    OUTER APPLY OPENJSON(CASE WHEN r.type = 5 THEN r.value END) WITH (
        Code nvarchar(4000) '$.code', CodeSystem nvarchar(4000) '$.codeSystem',
        Date1Text nvarchar(4000) '$.diagnosedDate', Date2Text nvarchar(4000) '$.endedDate'
    ) AS j
    UNION ALL
    SELECT d.DocNo, 'M', 'medication', CAST(r.[key] AS int), j.Code, NULL, NULL, NULL, NULL, j.Date1Text, j.Date2Text, j.Name
    FROM #UploadDoc AS d
    CROSS APPLY OPENJSON(CASE WHEN d.Unchanged = 0 AND LEFT(d.MedicationJson, 1) = N'[' THEN d.MedicationJson ELSE N'[]' END) AS r
    OUTER APPLY OPENJSON(CASE WHEN r.type = 5 THEN r.value END) WITH (
        Code nvarchar(4000) '$.atcCode', Name nvarchar(4000) '$.drugName',
        Date1Text nvarchar(4000) '$.startDate', Date2Text nvarchar(4000) '$.endDate'
    ) AS j
    UNION ALL
    SELECT d.DocNo, 'S', 'services', CAST(r.[key] AS int), j.Code, NULL, NULL, NULL, NULL, j.Date1Text, NULL, NULL
    FROM #UploadDoc AS d
    CROSS APPLY OPENJSON(CASE WHEN d.Unchanged = 0 AND LEFT(d.ServicesJson, 1) = N'[' THEN d.ServicesJson ELSE N'[]' END) AS r
    OUTER APPLY OPENJSON(CASE WHEN r.type = 5 THEN r.value END) WITH (
        Code nvarchar(4000) '$.serviceCode', Date1Text nvarchar(4000) '$.serviceDate'
    ) AS j
    UNION ALL
    SELECT d.DocNo, 'P', 'properties', CAST(r.[key] AS int), j.Code, NULL, j.Value, NULL, NULL, j.Date1Text, j.Date2Text, NULL
    FROM #UploadDoc AS d
    CROSS APPLY OPENJSON(CASE WHEN d.Unchanged = 0 AND LEFT(d.PropertiesJson, 1) = N'[' THEN d.PropertiesJson ELSE N'[]' END) AS r
    OUTER APPLY OPENJSON(CASE WHEN r.type = 5 THEN r.value END) WITH (
        Code nvarchar(4000) '$.code', Value nvarchar(4000) '$.value',
        Date1Text nvarchar(4000) '$.validFrom', Date2Text nvarchar(4000) '$.validTo'
    ) AS j;

    UPDATE #UploadRow
    SET Date1 = CASE WHEN Date1Text COLLATE Latin1_General_BIN2 LIKE '1[89][0-9][0-9]-[01][0-9]-[0-3][0-9]'
                OR Date1Text COLLATE Latin1_General_BIN2 LIKE '2[0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]'
            THEN TRY_CONVERT(date, Date1Text, 23) END,
        Date2 = CASE WHEN Date2Text COLLATE Latin1_General_BIN2 LIKE '1[89][0-9][0-9]-[01][0-9]-[0-3][0-9]'
                OR Date2Text COLLATE Latin1_General_BIN2 LIKE '2[0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]'
            THEN TRY_CONVERT(date, Date2Text, 23) END,
        UploadKey = CASE Kind
            WHEN 'V' THEN CONCAT_WS(N'|', Code, TimeText)
            WHEN 'D' THEN CONCAT_WS(N'|', CodeSystem, Code, Date1Text)
            ELSE CONCAT_WS(N'|', Code, Date1Text)
        END,
        ContentHash = HASHBYTES('SHA2_256', CONCAT_WS(NCHAR(31), Kind, COALESCE(Code, NCHAR(30)), COALESCE(CodeSystem, NCHAR(30)),
            COALESCE(Value, NCHAR(30)), COALESCE(Unit, NCHAR(30)), COALESCE(TimeText, NCHAR(30)),
            COALESCE(Date1Text, NCHAR(30)), COALESCE(Date2Text, NCHAR(30)), COALESCE(Name, NCHAR(30)))),
        CodeField = CASE Kind WHEN 'M' THEN 'atcCode' WHEN 'S' THEN 'serviceCode' ELSE 'code' END,
        Date1Field = CASE Kind WHEN 'D' THEN 'diagnosedDate' WHEN 'M' THEN 'startDate' WHEN 'S' THEN 'serviceDate' ELSE 'validFrom' END,
        Date2Field = CASE Kind WHEN 'D' THEN 'endedDate' WHEN 'M' THEN 'endDate' ELSE 'validTo' END,
        CodeMax = CASE Kind WHEN 'V' THEN 20 WHEN 'P' THEN 20 WHEN 'S' THEN 4 ELSE 10 END;

    ----------------------------------------------------------------------------
    -- Validate, set-based: every problem at once
    ----------------------------------------------------------------------------
    CREATE TABLE #UploadError (
        DocNo int NOT NULL,
        Field varchar(40) NOT NULL,
        RowNo int NULL,
        Reason varchar(30) NOT NULL,
        Message nvarchar(400) NOT NULL
    );
    INSERT INTO #UploadError (DocNo, Field, RowNo, Reason, Message)
    -- Patients
    SELECT d.DocNo, 'cpr', NULL, 'cpr_format', N'the CPR number must be ten digits'
    FROM #UploadDoc AS d WHERE d.Cpr IS NULL OR d.Cpr COLLATE Latin1_General_BIN2 NOT LIKE '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'
    UNION ALL
    SELECT d.DocNo, 'cpr', NULL, 'cpr_date', N'the CPR number''s birth date is no real date or lies in the future'
    FROM #UploadDoc AS d
    WHERE d.Cpr COLLATE Latin1_General_BIN2 LIKE '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]' AND (d.BirthDate IS NULL OR d.BirthDate > @Today)
    UNION ALL
    SELECT d.DocNo, 'cpr', NULL, 'duplicate_patient', N'the same patient is in an earlier document of this upload'
    FROM #UploadDoc AS d
    WHERE EXISTS (SELECT 1 FROM #UploadDoc AS e WHERE e.Cpr = d.Cpr AND e.DocNo < d.DocNo)
    UNION ALL
    SELECT d.DocNo, x.Field, NULL, 'too_long', N'at most 100 characters'
    FROM #UploadDoc AS d
    CROSS APPLY (VALUES ('givenName', d.GivenName), ('familyName', d.FamilyName)) AS x (Field, Val)
    WHERE LEN(x.Val) > 100
    -- Rows: required and length
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', r.CodeField), r.RowNo, 'missing', N'a code is required'
    FROM #UploadRow AS r WHERE COALESCE(LTRIM(RTRIM(r.Code)), N'') = N''
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', r.CodeField), r.RowNo, 'too_long', CONCAT(N'at most ', r.CodeMax, N' characters')
    FROM #UploadRow AS r WHERE LEN(r.Code) > r.CodeMax
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.time'), r.RowNo, 'missing', N'the time of the measurement is required'
    FROM #UploadRow AS r WHERE r.Kind = 'V' AND COALESCE(LTRIM(RTRIM(r.TimeText)), N'') = N''
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', x.Field), r.RowNo, 'too_long', CONCAT(N'at most ', x.MaxLength, N' characters')
    FROM #UploadRow AS r
    CROSS APPLY (VALUES ('value', r.Value, 100), ('unit', r.Unit, 20), ('time', r.TimeText, 40),
        ('drugName', r.Name, 200), ('codeSystem', r.CodeSystem, 10)) AS x (Field, Val, MaxLength)
    WHERE LEN(x.Val) > x.MaxLength
    -- Rows: codes known (Relevant rows active at now)
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.codeSystem'), r.RowNo, 'unknown_code_system', N'use ICPC2 or SKS'
    FROM #UploadRow AS r WHERE r.Kind = 'D' AND (r.CodeSystem IS NULL OR r.CodeSystem NOT IN ('ICPC2', 'SKS'))
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', r.CodeField), r.RowNo, 'unknown_code', N'the code is not in the Relevant tables'
    FROM #UploadRow AS r
    WHERE COALESCE(LTRIM(RTRIM(r.Code)), N'') <> N''
        AND NOT (r.Kind = 'D' AND (r.CodeSystem IS NULL OR r.CodeSystem NOT IN ('ICPC2', 'SKS')))
        AND NOT (
            (r.Kind = 'V' AND EXISTS (SELECT 1 FROM PLSP.RelevantVaerdi AS a WHERE a.Code = r.Code
                AND a.ActiveFromUtc <= @Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > @Now)))
            OR (r.Kind = 'D' AND EXISTS (SELECT 1 FROM PLSP.RelevantDiagnose AS a WHERE a.CodeSystem = r.CodeSystem
                AND r.Code LIKE a.Code + '%' AND a.ActiveFromUtc <= @Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > @Now)))
            OR (r.Kind = 'M' AND EXISTS (SELECT 1 FROM PLSP.RelevantMedicin AS a WHERE r.Code LIKE a.AtcPrefix + '%'
                AND a.ActiveFromUtc <= @Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > @Now)))
            OR (r.Kind = 'S' AND EXISTS (SELECT 1 FROM PLSP.RelevantYdelse AS a WHERE a.ServiceCode = r.Code
                AND a.ActiveFromUtc <= @Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > @Now)))
            OR (r.Kind = 'P' AND EXISTS (SELECT 1 FROM PLSP.RelevantEgenskab AS a WHERE a.Code = r.Code
                AND a.ActiveFromUtc <= @Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > @Now)))
        )
    -- Rows: units accepted
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.unit'), r.RowNo, 'unknown_unit', N'neither the analysis''s unit nor an accepted one'
    FROM #UploadRow AS r
    WHERE r.Kind = 'V' AND COALESCE(LTRIM(RTRIM(r.Unit)), N'') <> N''
        AND EXISTS (SELECT 1 FROM PLSP.RelevantVaerdi AS a WHERE a.Code = r.Code
            AND a.ActiveFromUtc <= @Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > @Now))
        AND NOT EXISTS (SELECT 1 FROM PLSP.RelevantVaerdi AS a WHERE a.Code = r.Code AND LOWER(a.Unit) = LOWER(LTRIM(RTRIM(r.Unit)))
            AND a.ActiveFromUtc <= @Now AND (a.ActiveToUtc IS NULL OR a.ActiveToUtc > @Now))
        AND NOT EXISTS (SELECT 1 FROM PLSP.RelevantVaerdiEnhed AS u WHERE u.Code = r.Code AND LOWER(u.Unit) = LOWER(LTRIM(RTRIM(r.Unit)))
            AND u.ActiveFromUtc <= @Now AND (u.ActiveToUtc IS NULL OR u.ActiveToUtc > @Now))
    -- Rows: dates plausible
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', r.Date1Field), r.RowNo,
        CASE WHEN COALESCE(r.Date1Text, N'') = N'' THEN 'missing' ELSE 'bad_date' END, N'give a real date as YYYY-MM-DD'
    FROM #UploadRow AS r WHERE r.Kind <> 'V' AND r.Date1 IS NULL
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', r.Date2Field), r.RowNo, 'bad_date', N'give a real date as YYYY-MM-DD, or null'
    FROM #UploadRow AS r WHERE r.Kind IN ('D', 'M', 'P') AND r.Date2Text IS NOT NULL AND r.Date2 IS NULL
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', r.Date1Field), r.RowNo, 'future_date', N'the date lies after today'
    FROM #UploadRow AS r WHERE r.Kind IN ('D', 'M', 'S') AND r.Date1 > @Today
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', r.Date1Field), r.RowNo, 'before_birth', N'the date lies before the patient''s birth'
    FROM #UploadRow AS r INNER JOIN #UploadDoc AS d ON r.DocNo = d.DocNo
    WHERE r.Date1 < d.BirthDate
    UNION ALL
    SELECT r.DocNo, CONCAT(r.ListName, '.', r.Date2Field), r.RowNo, 'end_before_start', N'the end lies before the start'
    FROM #UploadRow AS r WHERE r.Date2 < r.Date1
    -- Rows: one row per key and patient
    UNION ALL
    SELECT r.DocNo, r.ListName, r.RowNo, 'duplicate_row', CONCAT(N'the same row (key ', LEFT(r.UploadKey, 200), N') is earlier in the document')
    FROM #UploadRow AS r
    WHERE EXISTS (SELECT 1 FROM #UploadRow AS e WHERE e.DocNo = r.DocNo AND e.Kind = r.Kind
        AND e.UploadKey = r.UploadKey AND e.RowNo < r.RowNo);

    UPDATE d SET Rejected = 1
    FROM #UploadDoc AS d
    WHERE EXISTS (SELECT 1 FROM #UploadError AS e WHERE e.DocNo = d.DocNo);

    ----------------------------------------------------------------------------
    -- Do the work: patients, then rows new or changed; unchanged rows untouched
    ----------------------------------------------------------------------------
    BEGIN TRY
        BEGIN TRANSACTION;

        SELECT @KlinikId = k.KlinikId FROM PLSP.Klinik AS k WITH (UPDLOCK, HOLDLOCK) WHERE k.SorCode = @SorCode;
        IF @Execute = 'Y' AND @KlinikId IS NULL
        BEGIN
            INSERT INTO PLSP.Klinik (SorCode, Ydernummer, Name)
            VALUES (@SorCode, @Ydernummer, CONCAT('SOR ', @SorCode));
            SET @KlinikId = CAST(SCOPE_IDENTITY() AS int);
        END;

        IF @Execute = 'Y'
            INSERT INTO PLSP.Patient (Cpr, KlinikId, GivenName, FamilyName, BirthDate, Sex)
            SELECT d.Cpr, @KlinikId, COALESCE(d.GivenName, N''), COALESCE(d.FamilyName, N''), d.BirthDate,
                CASE WHEN CAST(SUBSTRING(d.Cpr, 10, 1) AS int) % 2 = 1 THEN 'M' ELSE 'F' END
            FROM #UploadDoc AS d
            WHERE d.Rejected = 0
                AND NOT EXISTS (SELECT 1 FROM PLSP.Patient AS p WITH (UPDLOCK, HOLDLOCK) WHERE p.Cpr = d.Cpr);

        UPDATE d SET PatientId = p.PatientId
        FROM #UploadDoc AS d
        INNER JOIN PLSP.Patient AS p ON d.Cpr = p.Cpr
        WHERE d.Rejected = 0;

        SELECT r.DocNo, r.Kind, r.Code, r.CodeSystem, r.Value, r.Unit, r.TimeText, r.Name, r.Date1, r.Date2,
            r.UploadKey, r.ContentHash, d.PatientId,
            CASE r.Kind
                WHEN 'V' THEN (SELECT t.ContentHash FROM PLSP.Patientvaerdier AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
                WHEN 'D' THEN (SELECT t.ContentHash FROM PLSP.Diagnose AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
                WHEN 'M' THEN (SELECT t.ContentHash FROM PLSP.Medicin AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
                WHEN 'S' THEN (SELECT t.ContentHash FROM PLSP.Ydelser AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
                ELSE (SELECT t.ContentHash FROM PLSP.Egenskaber AS t WHERE t.PatientId = d.PatientId AND t.UploadKey = r.UploadKey)
            END AS StoredHash
        INTO #UploadApply
        FROM #UploadRow AS r
        INNER JOIN #UploadDoc AS d ON r.DocNo = d.DocNo
        WHERE d.Rejected = 0;

        SELECT @Inserted = COALESCE(SUM(CASE WHEN a.StoredHash IS NULL THEN 1 ELSE 0 END), 0),
            @Updated = COALESCE(SUM(CASE WHEN a.StoredHash <> a.ContentHash THEN 1 ELSE 0 END), 0),
            @Unchanged = COALESCE(SUM(CASE WHEN a.StoredHash = a.ContentHash THEN 1 ELSE 0 END), 0)
        FROM #UploadApply AS a;
        -- Plus the rows of the documents found unchanged as a whole.
        SELECT @Unchanged += COALESCE(SUM(
            (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(d.ValuesJson, 1) = N'[' THEN d.ValuesJson ELSE N'[]' END))
            + (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(d.DiagnosesJson, 1) = N'[' THEN d.DiagnosesJson ELSE N'[]' END))
            + (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(d.MedicationJson, 1) = N'[' THEN d.MedicationJson ELSE N'[]' END))
            + (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(d.ServicesJson, 1) = N'[' THEN d.ServicesJson ELSE N'[]' END))
            + (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(d.PropertiesJson, 1) = N'[' THEN d.PropertiesJson ELSE N'[]' END))
        ), 0)
        FROM #UploadDoc AS d
        WHERE d.Unchanged = 1;

        IF @Execute = 'Y'
        BEGIN
            -- Values: raw text kept, converted later (status 0).
            UPDATE t
            SET RawValue = a.Value, RawTime = a.TimeText, Unit = NULLIF(LTRIM(RTRIM(a.Unit)), N''), ValueNumeric = NULL,
                Comparator = NULL, MeasuredUtc = NULL, ConversionStatus = 0, ConversionAttempts = 0, ReasonCode = NULL,
                ConvertedUtc = NULL, ReceivedUtc = @Now, ContentHash = a.ContentHash
            FROM PLSP.Patientvaerdier AS t
            INNER JOIN #UploadApply AS a ON t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey
            WHERE a.Kind = 'V' AND a.StoredHash <> a.ContentHash;
            INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, RawTime, Unit, ReceivedUtc, UploadKey, ContentHash)
            SELECT a.PatientId, a.Code, a.Value, a.TimeText, NULLIF(LTRIM(RTRIM(a.Unit)), N''), @Now, a.UploadKey, a.ContentHash
            FROM #UploadApply AS a WHERE a.Kind = 'V' AND a.StoredHash IS NULL;

            UPDATE t
            SET EndedDate = a.Date2, ReceivedUtc = @Now, ContentHash = a.ContentHash
            FROM PLSP.Diagnose AS t
            INNER JOIN #UploadApply AS a ON t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey
            WHERE a.Kind = 'D' AND a.StoredHash <> a.ContentHash;
            INSERT INTO PLSP.Diagnose (PatientId, Code, CodeSystem, DiagnosedDate, EndedDate, ReceivedUtc, UploadKey, ContentHash)
            SELECT a.PatientId, a.Code, a.CodeSystem, a.Date1, a.Date2, @Now, a.UploadKey, a.ContentHash
            FROM #UploadApply AS a WHERE a.Kind = 'D' AND a.StoredHash IS NULL;

            UPDATE t
            SET DrugName = a.Name, EndDate = a.Date2, ReceivedUtc = @Now, ContentHash = a.ContentHash
            FROM PLSP.Medicin AS t
            INNER JOIN #UploadApply AS a ON t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey
            WHERE a.Kind = 'M' AND a.StoredHash <> a.ContentHash;
            INSERT INTO PLSP.Medicin (PatientId, AtcCode, DrugName, StartDate, EndDate, ReceivedUtc, UploadKey, ContentHash)
            SELECT a.PatientId, a.Code, a.Name, a.Date1, a.Date2, @Now, a.UploadKey, a.ContentHash
            FROM #UploadApply AS a WHERE a.Kind = 'M' AND a.StoredHash IS NULL;

            INSERT INTO PLSP.Ydelser (PatientId, KlinikId, ServiceCode, ServiceDate, ReceivedUtc, UploadKey, ContentHash)
            SELECT a.PatientId, @KlinikId, a.Code, a.Date1, @Now, a.UploadKey, a.ContentHash
            FROM #UploadApply AS a WHERE a.Kind = 'S' AND a.StoredHash IS NULL;

            UPDATE t
            SET Value = a.Value, ValidToUtc = a.Date2, ContentHash = a.ContentHash
            FROM PLSP.Egenskaber AS t
            INNER JOIN #UploadApply AS a ON t.PatientId = a.PatientId AND t.UploadKey = a.UploadKey
            WHERE a.Kind = 'P' AND a.StoredHash <> a.ContentHash;
            INSERT INTO PLSP.Egenskaber (PatientId, Code, Value, ValidFromUtc, ValidToUtc, UploadKey, ContentHash)
            SELECT a.PatientId, a.Code, a.Value, a.Date1, a.Date2, a.UploadKey, a.ContentHash
            FROM #UploadApply AS a WHERE a.Kind = 'P' AND a.StoredHash IS NULL;

            -- The accepted documents' hashes, for the next resync (Patient has no dirty-mark trigger).
            UPDATE p SET UploadDocumentHash = d.DocHash
            FROM PLSP.Patient AS p
            INNER JOIN #UploadDoc AS d ON p.PatientId = d.PatientId
            WHERE d.Rejected = 0 AND d.Unchanged = 0
                AND (p.UploadDocumentHash IS NULL OR p.UploadDocumentHash <> d.DocHash);
        END;

        ------------------------------------------------------------------------
        -- Outcome, statistics
        ------------------------------------------------------------------------
        SELECT @Documents = COUNT(*), @RejectedDocuments = COALESCE(SUM(CAST(d.Rejected AS int)), 0) FROM #UploadDoc AS d;
        SELECT @Rejected = COUNT(*)
        FROM #UploadRow AS r INNER JOIN #UploadDoc AS d ON r.DocNo = d.DocNo WHERE d.Rejected = 1;
        SET @Errors = COALESCE((
            SELECT TOP (1000) e.DocNo AS [document], e.Field AS [field], e.RowNo AS [row], e.Reason AS [reason], e.Message AS [message]
            FROM #UploadError AS e
            ORDER BY e.DocNo, COALESCE(e.RowNo, -1), e.Field
            FOR JSON PATH, INCLUDE_NULL_VALUES
        ), N'[]');
        SET @Result = CASE WHEN @Execute = 'N' THEN 'dry_run' WHEN @RejectedDocuments = 0 THEN 'accepted'
            WHEN @RejectedDocuments = @Documents THEN 'rejected' ELSE 'partly_accepted' END;

        IF @Execute = 'Y'
        BEGIN
            IF @QueuedUploadId IS NULL
            BEGIN
                INSERT INTO PLSP.Upload (SorCode, Ydernummer, ReceivedUtc, FinishedUtc, Status, Documents, RejectedDocuments,
                    RowsInserted, RowsUpdated, RowsUnchanged, RowsRejected, Errors)
                VALUES (@SorCode, @Ydernummer, @Now, @Now, 'done', @Documents, @RejectedDocuments,
                    @Inserted, @Updated, @Unchanged, @Rejected, @Errors);
                SET @UploadId = CAST(SCOPE_IDENTITY() AS bigint);
            END;
            ELSE
            BEGIN
                UPDATE PLSP.Upload
                SET FinishedUtc = @Now, Status = 'done', Documents = @Documents, RejectedDocuments = @RejectedDocuments,
                    RowsInserted = @Inserted, RowsUpdated = @Updated, RowsUnchanged = @Unchanged,
                    RowsRejected = @Rejected, Errors = @Errors, Document = NULL
                WHERE UploadId = @QueuedUploadId;
                SET @UploadId = @QueuedUploadId;
            END;

            UPDATE s WITH (UPDLOCK, HOLDLOCK)
            SET Uploads = s.Uploads + 1, Documents = s.Documents + @Documents,
                RejectedDocuments = s.RejectedDocuments + @RejectedDocuments,
                RowsInserted = s.RowsInserted + @Inserted, RowsUpdated = s.RowsUpdated + @Updated,
                RowsUnchanged = s.RowsUnchanged + @Unchanged, RowsRejected = s.RowsRejected + @Rejected
            FROM Ops.UploadStatistic AS s
            WHERE s.SorCode = @SorCode AND s.DayUtc = @Today;
            INSERT INTO Ops.UploadStatistic (SorCode, DayUtc, Uploads, Documents, RejectedDocuments,
                RowsInserted, RowsUpdated, RowsUnchanged, RowsRejected)
            SELECT @SorCode, @Today, 1, @Documents, @RejectedDocuments, @Inserted, @Updated, @Unchanged, @Rejected
            WHERE NOT EXISTS (
                SELECT 1 FROM Ops.UploadStatistic AS s WITH (UPDLOCK, HOLDLOCK) WHERE s.SorCode = @SorCode AND s.DayUtc = @Today
            );

            UPDATE s WITH (UPDLOCK, HOLDLOCK)
            SET RowsRejected = s.RowsRejected + e.Rows
            FROM Ops.UploadRejection AS s
            INNER JOIN (SELECT x.Reason, COUNT(*) AS Rows FROM #UploadError AS x GROUP BY x.Reason) AS e ON s.Reason = e.Reason
            WHERE s.SorCode = @SorCode AND s.DayUtc = @Today;
            INSERT INTO Ops.UploadRejection (SorCode, DayUtc, Reason, RowsRejected)
            SELECT @SorCode, @Today, e.Reason, COUNT(*)
            FROM #UploadError AS e
            WHERE NOT EXISTS (
                SELECT 1 FROM Ops.UploadRejection AS s WITH (UPDLOCK, HOLDLOCK)
                WHERE s.SorCode = @SorCode AND s.DayUtc = @Today AND s.Reason = e.Reason
            )
            GROUP BY e.Reason;
        END;

        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
