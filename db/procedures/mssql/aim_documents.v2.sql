-- Job.aim_documents, version 2.
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
-- Changed from v1: every distinct id is read and classified once, in one
-- INSERT into @Due that also captures the columns of the document's own rows
-- (FLP_AIM, care plan, patient, clinic); the documents and every count come
-- from @Due, so @Found + @AlreadyDelivered + the ids in @Missing is always the
-- number of distinct ids. v1 classified the ids again in a second statement,
-- which could count a row marked or deleted between the two reads twice or
-- not at all. A row in PLSP.FLP_AIM decides by its Status; FLP_AIM_History
-- only counts for an id not in PLSP.FLP_AIM. Same parameters as v1.
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * The ids are classified into the table variable @Due in one INSERT; the twin classifies and builds in one SELECT (one snapshot).
--   * The documents are built with FOR JSON from @Due; the twin: json_build_object / json_agg.
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
    -- Kind: 1 found (a document), 2 delivered already, 3 missing.
    DECLARE @Due TABLE (
        Id bigint NOT NULL PRIMARY KEY,
        Kind tinyint NOT NULL,
        AimCreatedUtc datetime2(3) NULL,
        ForloebsplanId bigint NULL,
        ForloebCode varchar(10) COLLATE DATABASE_DEFAULT NULL,
        SetId uniqueidentifier NULL,
        VersionNumber int NULL,
        PlanStatus tinyint NULL,
        PlanCreatedUtc datetime2(3) NULL,
        PlanUpdatedUtc datetime2(3) NULL,
        PatientId bigint NULL,
        Cpr char(10) COLLATE DATABASE_DEFAULT NULL,
        GivenName nvarchar(100) COLLATE DATABASE_DEFAULT NULL,
        FamilyName nvarchar(100) COLLATE DATABASE_DEFAULT NULL,
        BirthDate date NULL,
        Sex char(1) COLLATE DATABASE_DEFAULT NULL,
        KlinikId int NULL,
        SorCode varchar(20) COLLATE DATABASE_DEFAULT NULL,
        Ydernummer varchar(10) COLLATE DATABASE_DEFAULT NULL,
        KlinikName nvarchar(200) COLLATE DATABASE_DEFAULT NULL
    );

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
    -- Do the work: classify every id once, with the columns of its document's rows
    ----------------------------------------------------------------------------
    INSERT INTO @Due (
        Id, Kind, AimCreatedUtc, ForloebsplanId, ForloebCode, SetId, VersionNumber, PlanStatus,
        PlanCreatedUtc, PlanUpdatedUtc, PatientId, Cpr, GivenName, FamilyName, BirthDate, Sex,
        KlinikId, SorCode, Ydernummer, KlinikName
    )
    SELECT
        w.Id,
        CASE
            WHEN a.Status = 2 THEN 2
            WHEN a.Id IS NULL AND EXISTS (SELECT 1 FROM PLSP.FLP_AIM_History AS h WHERE h.Id = w.Id) THEN 2
            WHEN k.KlinikId IS NOT NULL THEN 1
            ELSE 3
        END,
        a.CreatedUtc AS AimCreatedUtc, f.ForloebsplanId, f.ForloebCode, f.SetId, f.VersionNumber,
        f.Status AS PlanStatus, f.CreatedUtc AS PlanCreatedUtc, f.UpdatedUtc AS PlanUpdatedUtc,
        p.PatientId, p.Cpr, p.GivenName, p.FamilyName, p.BirthDate, p.Sex,
        k.KlinikId, k.SorCode, k.Ydernummer, k.Name AS KlinikName
    FROM @Wanted AS w
    LEFT JOIN PLSP.FLP_AIM AS a ON w.Id = a.Id
    LEFT JOIN PLSP.Forloebsplan AS f ON a.ForloebsplanId = f.ForloebsplanId AND a.Status IN (0, 1)
    LEFT JOIN PLSP.Patient AS p ON f.PatientId = p.PatientId
    LEFT JOIN PLSP.Klinik AS k ON p.KlinikId = k.KlinikId;

    ----------------------------------------------------------------------------
    -- Do the work: the documents of the ids found (reads only; nothing is logged per message)
    ----------------------------------------------------------------------------
    SET @Documents = (
        SELECT
            d.Id AS [_id],
            d.Id AS aimId,
            d.AimCreatedUtc AS [aimCreatedUtc],
            @NowUtc AS extractedUtc,
            CASE d.ForloebCode WHEN 'ALAL22' THEN 'DVDD' WHEN 'ALAL21' THEN 'DrKOL' WHEN 'ALAL02' THEN 'DHR' END AS rkkpDatabase,
            JSON_QUERY((
                SELECT
                    d.ForloebsplanId AS id, d.ForloebCode AS [forloebCode], d.SetId AS [setId],
                    d.VersionNumber AS [versionNumber], d.PlanStatus AS [status], d.PlanCreatedUtc AS [createdUtc],
                    d.PlanUpdatedUtc AS [updatedUtc]
                FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
            )) AS [carePlan],
            JSON_QUERY((
                SELECT
                    d.PatientId AS id, d.Cpr AS [cpr], d.GivenName AS [givenName], d.FamilyName AS [familyName],
                    d.BirthDate AS [birthDate], d.Sex AS [sex],
                    JSON_QUERY((
                        SELECT d.KlinikId AS id, d.SorCode AS [sorCode], d.Ydernummer AS [ydernummer], d.KlinikName AS [name]
                        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
                    )) AS clinic
                FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
            )) AS patient,
            JSON_QUERY(COALESCE((
                SELECT i.ForloebCode AS [forloebCode], i.IsIncluded AS [isIncluded], i.Reason AS [reason], i.ChangedUtc AS [changedUtc]
                FROM PLSP.PatientInkluderet AS i
                WHERE i.PatientId = d.PatientId
                ORDER BY i.ForloebCode
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS inclusion,
            JSON_QUERY(COALESCE((
                SELECT
                    v.Code AS [code], v.RawValue AS [rawValue], v.RawTime AS [rawTime], v.ValueNumeric AS value,
                    v.Comparator AS [comparator], v.Unit AS [unit], v.MeasuredUtc AS [measuredUtc],
                    v.ReceivedUtc AS [receivedUtc], v.ConversionStatus AS [conversionStatus]
                FROM PLSP.Patientvaerdier AS v
                WHERE v.PatientId = d.PatientId AND COALESCE(v.MeasuredUtc, v.ReceivedUtc) >= @CutoffUtc
                ORDER BY v.Code, v.MeasuredUtc, v.PatientvaerdiId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS [values],
            JSON_QUERY(COALESCE((
                SELECT x.Code AS [code], x.CodeSystem AS [codeSystem], x.DiagnosedDate AS [diagnosedDate], x.EndedDate AS [endedDate]
                FROM PLSP.Diagnose AS x
                WHERE x.PatientId = d.PatientId
                ORDER BY x.DiagnosedDate, x.DiagnoseId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS diagnoses,
            JSON_QUERY(COALESCE((
                SELECT m.AtcCode AS [atcCode], m.DrugName AS [drugName], m.StartDate AS [startDate], m.EndDate AS [endDate]
                FROM PLSP.Medicin AS m
                WHERE m.PatientId = d.PatientId
                ORDER BY m.StartDate, m.MedicinId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS medication,
            JSON_QUERY(COALESCE((
                SELECT y.ServiceCode AS [serviceCode], y.ServiceDate AS [serviceDate], y.KlinikId AS clinicId
                FROM PLSP.Ydelser AS y
                WHERE y.PatientId = d.PatientId
                ORDER BY y.ServiceDate, y.YdelseId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS services,
            JSON_QUERY(COALESCE((
                SELECT g.Code AS [code], g.Value AS [value], g.ValidFromUtc AS [validFromUtc], g.ValidToUtc AS [validToUtc]
                FROM PLSP.Egenskaber AS g
                WHERE g.PatientId = d.PatientId
                ORDER BY g.ValidFromUtc, g.EgenskabId
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS properties
        FROM @Due AS d
        WHERE d.Kind = 1
        ORDER BY d.Id
        FOR JSON PATH, INCLUDE_NULL_VALUES
    );
    SET @Documents = COALESCE(@Documents, N'[]');

    SELECT
        @Found = COUNT(CASE WHEN d.Kind = 1 THEN 1 END),
        @AlreadyDelivered = COUNT(CASE WHEN d.Kind = 2 THEN 1 END),
        @Missing = STRING_AGG(CASE WHEN d.Kind = 3 THEN CAST(d.Id AS varchar(MAX)) END, ',') WITHIN GROUP (ORDER BY d.Id)
    FROM @Due AS d;
END;
