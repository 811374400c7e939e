-- Api.care_plan_read, version 1.
-- One citizen's care plans in one set-based read, as one JSON document in
-- @Document (HentCDA, Hent værdier i CDA and the DDS on-demand retrieve build
-- their DK-CPD documents from it in the service, orchestrator/cda). The patient
-- is named by @Cpr (the app's citizen) or by @SetId (the setId of one of the
-- patient's care plans: the DDS on-demand entry), exactly one of the two.
-- @Document is NULL when no such patient exists. Shape (docs/cda.md):
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
-- Differences from the PostgreSQL twin, one line each:
--   * The document is built with FOR JSON PATH; the twin: json_build_object / json_agg.
--   * uuids come out upper case; the twin's lower case (the service folds them).
CREATE OR ALTER PROCEDURE Api.care_plan_read
    @Cpr char(10) = NULL,
    @SetId uniqueidentifier = NULL,
    @NowUtc datetime2(3) = NULL,
    @Document nvarchar(MAX) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = COALESCE(@NowUtc, SYSUTCDATETIME());
    DECLARE @PatientId bigint;

    ----------------------------------------------------------------------------
    -- Check requirements: none (a read at READ COMMITTED, inside or outside a transaction).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @Cpr IS NOT NULL AND (LEN(@Cpr) <> 10 OR @Cpr COLLATE Latin1_General_BIN2 LIKE '%[^0-9]%')
        SET @Errors += N'The value for the parameter @Cpr is not supported: give ten digits without a hyphen. ';
    IF (CASE WHEN @Cpr IS NULL THEN 0 ELSE 1 END) + (CASE WHEN @SetId IS NULL THEN 0 ELSE 1 END) <> 1
        SET @Errors += N'The parameters @Cpr and @SetId are not supported together: give exactly one (the citizen''s CPR or a care plan''s setId). ';
    IF @NowUtc IS NOT NULL AND (@NowUtc < '2000-01-01' OR @NowUtc >= '2100-01-01')
        SET @Errors += N'The value for the parameter @NowUtc is not supported: give a UTC time from 2000 to 2099, or NULL for now. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Find the patient
    ----------------------------------------------------------------------------
    IF @Cpr IS NOT NULL
        SELECT @PatientId = p.PatientId FROM PLSP.Patient AS p WHERE p.Cpr = @Cpr;
    ELSE
        SELECT @PatientId = f.PatientId FROM PLSP.Forloebsplan AS f WHERE f.SetId = @SetId;
    IF @PatientId IS NULL
    BEGIN
        SET @Document = NULL;
        RETURN;
    END;

    ----------------------------------------------------------------------------
    -- Read: the patient, the clinic and every care plan with its sections
    ----------------------------------------------------------------------------
    SET @Document = (
        SELECT
            JSON_QUERY((
                SELECT
                    p.PatientId AS [patientId],
                    p.Cpr AS [cpr],
                    p.GivenName AS [givenName],
                    p.FamilyName AS [familyName],
                    p.BirthDate AS [birthDate],
                    p.Sex AS [sex]
                FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
            )) AS [patient],
            JSON_QUERY((
                SELECT
                    k.SorCode AS [sor],
                    k.Name AS [name],
                    k.Ydernummer AS [ydernummer]
                FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
            )) AS [clinic],
            @Now AS [nowUtc],
            JSON_QUERY(COALESCE((
                SELECT
                    f.ForloebsplanId AS [forloebsplanId],
                    f.ForloebCode AS [forloebCode],
                    f.SetId AS [setId],
                    f.Status AS [status],
                    f.CreatedUtc AS [createdUtc],
                    f.VersionNumber AS [planVersionNumber],
                    (
                        SELECT TOP (1) rf.Description FROM PLSP.RelevantForloeb AS rf
                        WHERE rf.ForloebCode = f.ForloebCode AND rf.ActiveFromUtc <= @Now
                        ORDER BY rf.ActiveFromUtc DESC
                    ) AS [title],
                    JSON_QUERY((
                        SELECT TOP (1)
                            dv.VersionNumber AS [versionNumber],
                            dv.DocumentId AS [documentId],
                            dv.ContentHash AS [contentHash],
                            dv.CreatedUtc AS [createdUtc],
                            (
                                SELECT pv.DocumentId FROM PLSP.CdaDocumentVersion AS pv
                                WHERE pv.ForloebsplanId = dv.ForloebsplanId AND pv.VersionNumber = dv.VersionNumber - 1
                            ) AS [previousDocumentId]
                        FROM PLSP.CdaDocumentVersion AS dv
                        WHERE dv.ForloebsplanId = f.ForloebsplanId
                        ORDER BY dv.VersionNumber DESC
                        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
                    )) AS [version],
                    JSON_QUERY(COALESCE((
                        SELECT
                            d.Code AS [code],
                            d.CodeSystem AS [codeSystem],
                            rd.Description AS [description],
                            d.DiagnosedDate AS [diagnosedDate],
                            d.EndedDate AS [endedDate]
                        FROM PLSP.Diagnose AS d
                        CROSS APPLY (
                            SELECT TOP (1) r.Description FROM PLSP.RelevantDiagnose AS r
                            WHERE r.ForloebCode = f.ForloebCode AND r.CodeSystem = d.CodeSystem
                                AND d.Code LIKE r.Code + '%'
                                AND r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
                            ORDER BY LEN(r.Code) DESC, r.ActiveFromUtc DESC
                        ) AS rd
                        WHERE d.PatientId = f.PatientId
                        ORDER BY d.DiagnosedDate, d.DiagnoseId
                        FOR JSON PATH, INCLUDE_NULL_VALUES
                    ), N'[]')) AS [diagnoses],
                    JSON_QUERY(COALESCE((
                        SELECT
                            m.AtcCode AS [atcCode],
                            m.DrugName AS [drugName],
                            m.StartDate AS [startDate],
                            m.EndDate AS [endDate]
                        FROM PLSP.Medicin AS m
                        WHERE m.PatientId = f.PatientId
                            AND EXISTS (
                                SELECT 1 FROM PLSP.RelevantMedicin AS r
                                WHERE r.ForloebCode = f.ForloebCode AND m.AtcCode LIKE r.AtcPrefix + '%'
                                    AND r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
                            )
                        ORDER BY m.StartDate, m.MedicinId
                        FOR JSON PATH, INCLUDE_NULL_VALUES
                    ), N'[]')) AS [medication],
                    JSON_QUERY(COALESCE((
                        SELECT
                            v.PatientvaerdiId AS [valueId],
                            v.Code AS [code],
                            rv.Description AS [description],
                            v.ValueNumeric AS [value],
                            v.Unit AS [unit],
                            v.Comparator AS [comparator],
                            v.MeasuredUtc AS [measuredUtc]
                        FROM PLSP.Patientvaerdier AS v
                        CROSS APPLY (
                            SELECT TOP (1) r.Description FROM PLSP.RelevantVaerdi AS r
                            WHERE r.Code = v.Code AND (r.ForloebCode IS NULL OR r.ForloebCode = f.ForloebCode)
                                AND r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
                            ORDER BY r.ActiveFromUtc DESC
                        ) AS rv
                        WHERE v.PatientId = f.PatientId AND v.ConversionStatus = 1
                            AND v.ValueNumeric IS NOT NULL AND v.MeasuredUtc IS NOT NULL
                        ORDER BY v.Code, v.MeasuredUtc, v.PatientvaerdiId
                        FOR JSON PATH, INCLUDE_NULL_VALUES
                    ), N'[]')) AS [values]
                FROM PLSP.Forloebsplan AS f
                WHERE f.PatientId = p.PatientId
                ORDER BY f.ForloebCode
                FOR JSON PATH, INCLUDE_NULL_VALUES
            ), N'[]')) AS [plans]
        FROM PLSP.Patient AS p
        INNER JOIN PLSP.Klinik AS k ON p.KlinikId = k.KlinikId
        WHERE p.PatientId = @PatientId
        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES
    );
END;
