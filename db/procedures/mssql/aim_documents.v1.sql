-- Job.aim_documents, version 1.
-- The care-plan documents of one AIM message, in one set-based call: for each
-- FLP_AIM id in @Ids (a JSON array of ids) that is still to deliver (Status 0
-- or 1), the care plan, the patient with CPR and clinic, the patient's
-- inclusion in each population, recent values (RecentValueDays setting),
-- diagnoses, medication, services and properties. The shape is
-- docs/aim-document.md (JSON Schema docs/aim-document.schema.json); the AIM id
-- is the document's _id, so a redelivered message writes no duplicate.
-- @Documents is a JSON array in Id order ('[]' when none); @Found counts it.
-- Ids already delivered (Status 2, or archived to FLP_AIM_History) are left
-- out and counted in @AlreadyDelivered; ids found nowhere, or whose care plan
-- is gone, are returned in @Missing (comma list) for the dead-letter place.
-- Reads only; the caller marks the rows delivered (Job.aim_mark_delivered)
-- once MongoDB has them.
CREATE OR ALTER PROCEDURE Job.aim_documents
    @Ids varchar(MAX),
    @Documents nvarchar(MAX) = NULL OUTPUT,
    @Found int = NULL OUTPUT,
    @AlreadyDelivered int = NULL OUTPUT,
    @Missing varchar(MAX) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Elements int;
    DECLARE @DaysText nvarchar(400);
    DECLARE @Days int;
    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @CutoffUtc datetime2(3);
    DECLARE @Wanted TABLE (Id bigint NOT NULL PRIMARY KEY);

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @Ids IS NULL OR ISJSON(@Ids) <> 1 OR LTRIM(@Ids) NOT LIKE '[[]%'
        SET @Errors += N'The value for the parameter @Ids is not supported: give a JSON array of FLP_AIM ids. ';
    ELSE
    BEGIN
        SELECT @Elements = COUNT(*) FROM OPENJSON(@Ids);
        IF @Elements NOT BETWEEN 1 AND 4999
            SET @Errors += N'The value for the parameter @Ids is not supported: give 1 to 4999 ids. ';
        ELSE IF EXISTS (
            SELECT 1 FROM OPENJSON(@Ids) AS e
            WHERE e.type <> 2 OR e.value COLLATE Latin1_General_BIN2 LIKE '%[^0-9]%' OR LEN(e.value) > 18 OR e.value LIKE '0%'
        )
            SET @Errors += N'The value for the parameter @Ids is not supported: every id must be a positive whole number. ';
    END;

    SELECT TOP (1) @DaysText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName IN ('aim_consume', '*') AND s.Name = 'RecentValueDays'
    ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END;
    IF LEN(@DaysText) BETWEEN 1 AND 5 AND @DaysText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @Days = CAST(@DaysText AS int);
    IF @Days IS NULL OR @Days NOT BETWEEN 1 AND 36500
        SET @Errors += N'Setting RecentValueDays (Ops.Setting, job aim_consume) must be a whole number of days from 1 to 36500. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    SET @CutoffUtc = DATEADD(DAY, -@Days, @NowUtc);

    INSERT INTO @Wanted (Id)
    SELECT DISTINCT j.Id
    FROM OPENJSON(@Ids) WITH (Id bigint '$') AS j;

    ----------------------------------------------------------------------------
    -- Do the work: the documents (reads only; nothing is logged per message)
    ----------------------------------------------------------------------------
    SET @Documents = (
        SELECT
            a.Id AS [_id],
            a.Id AS aimId,
            a.CreatedUtc AS aimCreatedUtc,
            @NowUtc AS extractedUtc,
            CASE f.ForloebCode WHEN 'ALAL22' THEN 'DVDD' WHEN 'ALAL21' THEN 'DrKOL' WHEN 'ALAL02' THEN 'DHR' END AS rkkpDatabase,
            JSON_QUERY((
                SELECT
                    f.ForloebsplanId AS id, f.ForloebCode AS [forloebCode], f.SetId AS [setId],
                    f.VersionNumber AS [versionNumber], f.Status AS [status], f.CreatedUtc AS [createdUtc],
                    f.UpdatedUtc AS [updatedUtc]
                FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
            )) AS [carePlan],
            JSON_QUERY((
                SELECT
                    p.PatientId AS id, p.Cpr AS [cpr], p.GivenName AS [givenName], p.FamilyName AS [familyName],
                    p.BirthDate AS [birthDate], p.Sex AS [sex],
                    JSON_QUERY((
                        SELECT k.KlinikId AS id, k.SorCode AS [sorCode], k.Ydernummer AS [ydernummer], k.Name AS [name]
                        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
                    )) AS clinic
                FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
            )) AS patient,
            JSON_QUERY(COALESCE((
                SELECT i.ForloebCode AS [forloebCode], i.IsIncluded AS [isIncluded], i.Reason AS [reason], i.ChangedUtc AS [changedUtc]
                FROM PLSP.PatientInkluderet AS i
                WHERE i.PatientId = p.PatientId
                ORDER BY i.ForloebCode
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS inclusion,
            JSON_QUERY(COALESCE((
                SELECT
                    v.Code AS [code], v.RawValue AS [rawValue], v.RawTime AS [rawTime], v.ValueNumeric AS value,
                    v.Comparator AS [comparator], v.Unit AS [unit], v.MeasuredUtc AS [measuredUtc],
                    v.ReceivedUtc AS [receivedUtc], v.ConversionStatus AS [conversionStatus]
                FROM PLSP.Patientvaerdier AS v
                WHERE v.PatientId = p.PatientId AND COALESCE(v.MeasuredUtc, v.ReceivedUtc) >= @CutoffUtc
                ORDER BY v.Code, v.MeasuredUtc, v.PatientvaerdiId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS [values],
            JSON_QUERY(COALESCE((
                SELECT x.Code AS [code], x.CodeSystem AS [codeSystem], x.DiagnosedDate AS [diagnosedDate], x.EndedDate AS [endedDate]
                FROM PLSP.Diagnose AS x
                WHERE x.PatientId = p.PatientId
                ORDER BY x.DiagnosedDate, x.DiagnoseId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS diagnoses,
            JSON_QUERY(COALESCE((
                SELECT m.AtcCode AS [atcCode], m.DrugName AS [drugName], m.StartDate AS [startDate], m.EndDate AS [endDate]
                FROM PLSP.Medicin AS m
                WHERE m.PatientId = p.PatientId
                ORDER BY m.StartDate, m.MedicinId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS medication,
            JSON_QUERY(COALESCE((
                SELECT y.ServiceCode AS [serviceCode], y.ServiceDate AS [serviceDate], y.KlinikId AS clinicId
                FROM PLSP.Ydelser AS y
                WHERE y.PatientId = p.PatientId
                ORDER BY y.ServiceDate, y.YdelseId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS services,
            JSON_QUERY(COALESCE((
                SELECT g.Code AS [code], g.Value AS [value], g.ValidFromUtc AS [validFromUtc], g.ValidToUtc AS [validToUtc]
                FROM PLSP.Egenskaber AS g
                WHERE g.PatientId = p.PatientId
                ORDER BY g.ValidFromUtc, g.EgenskabId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS properties
        FROM @Wanted AS w
        INNER JOIN PLSP.FLP_AIM AS a ON w.Id = a.Id AND a.Status IN (0, 1)
        INNER JOIN PLSP.Forloebsplan AS f ON a.ForloebsplanId = f.ForloebsplanId
        INNER JOIN PLSP.Patient AS p ON f.PatientId = p.PatientId
        INNER JOIN PLSP.Klinik AS k ON p.KlinikId = k.KlinikId
        ORDER BY a.Id
        FOR JSON PATH, INCLUDE_NULL_VALUES
    );
    SET @Documents = COALESCE(@Documents, N'[]');
    SET @Found = (SELECT COUNT(*) FROM OPENJSON(@Documents));

    ----------------------------------------------------------------------------
    -- Do the work: the ids without a document
    ----------------------------------------------------------------------------
    WITH Classified AS (
        SELECT
            w.Id,
            CASE
                WHEN EXISTS (SELECT 1 FROM PLSP.FLP_AIM AS a WHERE a.Id = w.Id AND a.Status = 2) THEN 'delivered'
                WHEN EXISTS (SELECT 1 FROM PLSP.FLP_AIM_History AS h WHERE h.Id = w.Id) THEN 'delivered'
                WHEN EXISTS (
                    SELECT 1
                    FROM PLSP.FLP_AIM AS a
                    INNER JOIN PLSP.Forloebsplan AS f ON a.ForloebsplanId = f.ForloebsplanId
                    WHERE a.Id = w.Id AND a.Status IN (0, 1)
                ) THEN 'found'
                ELSE 'missing'
            END AS Kind
        FROM @Wanted AS w
    )

    SELECT
        @AlreadyDelivered = COUNT(CASE WHEN c.Kind = 'delivered' THEN 1 END),
        @Missing = STRING_AGG(CASE WHEN c.Kind = 'missing' THEN CAST(c.Id AS varchar(MAX)) END, ',') WITHIN GROUP (ORDER BY c.Id)
    FROM Classified AS c;
END;
