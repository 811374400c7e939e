-- Upload.upload_enqueue, version 2.
-- Accepts a bulk upload (issue 11, docs/http.md: over the service's size
-- threshold, or marked by the LPS as a full resync) as a job: one PLSP.Upload
-- row with Status 'queued' and every patient document of @Document (the
-- shape Upload.upload_data reads) staged as one row of Upload.StagedDocument,
-- in one short transaction. Job.upload_drain applies them later in batches.
-- A document whose patient (CPR number) is in an earlier document of the same
-- upload is rejected here with duplicate_patient, as Upload.upload_data does,
-- and not staged (the drain's batches could not see the earlier document);
-- its other errors are not listed. A document identical to the patient's
-- last accepted one (the SHA-256 of the document, PLSP.Patient.
-- UploadDocumentHash, as Upload.upload_data compares it) is done at once, in
-- one set-based statement: counted unchanged, not staged, nothing written for
-- it; an unchanged full resync is thus a job that is done when accepted. The
-- upload counts as one upload of the day in Ops.UploadStatistic now; its
-- documents and rows are counted as they are done.
-- @UploadId is the job's id (its status: Upload.upload_job_status);
-- @Documents and @Rows what it holds. Nothing here is ever a CPR number.
-- One transaction; ownership chaining reaches the tables for flp_lps.
-- Version 2 (issue 11): a document of more than 4000 rows (@MaxDocRows: the
-- drain applies a document whole in one batch, and a batch stays under SQL
-- Server's lock escalation at 5,000 locks) is rejected here with
-- too_many_rows, naming the document and its largest list as the field, and
-- not staged: nothing of it is written; the other documents go on.
-- An unchanged resync takes a fast path: when every document is its
-- patient's last accepted one (and no patient repeats, none is over the cap),
-- one SELECT finds it and the job is recorded done, without the #temp table
-- (which cost about half of an unchanged 200-document call on PostgreSQL).
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * OPENJSON reads the document; the twin: jsonb functions.
--   * A staged document is its text as sent; the twin: its jsonb text (each the text Upload.upload_data hashes on its engine).
--   * Statistics upserted by UPDATE WITH (UPDLOCK, HOLDLOCK), then INSERT ... WHERE NOT EXISTS; the twin: INSERT ... ON CONFLICT.
--   * The staged documents are inserted at most 4,000 a statement (under lock escalation); the twin: one INSERT.
--   * The #temp table's character columns are COLLATE DATABASE_DEFAULT (tempdb's collation: error 468 on the CPR join).
CREATE OR ALTER PROCEDURE Upload.upload_enqueue
    @SorCode varchar(20),
    @Ydernummer varchar(10),
    @Document nvarchar(MAX),
    @FullResync char(1) = 'N',
    @NowUtc datetime2(3) = NULL,
    @UploadId bigint = NULL OUTPUT,
    @Documents int = NULL OUTPUT,
    @Rows int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 5000;  -- a statistics row held long is waited for a bounded time; reverts on return

    DECLARE @MaxDocRows int = 4000;  -- rows a document: the drain's largest batch (@BatchSize)
    DECLARE @ParameterErrors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = COALESCE(@NowUtc, SYSUTCDATETIME());
    DECLARE @Today date = CAST(COALESCE(@NowUtc, SYSUTCDATETIME()) AS date);
    DECLARE @Duplicates int;
    DECLARE @DuplicateRows int;
    DECLARE @DuplicateErrors nvarchar(MAX);
    DECLARE @Oversize int;
    DECLARE @OversizeRows int;
    DECLARE @Patients int;
    DECLARE @MaxRows int;
    DECLARE @Unchanged int;
    DECLARE @UnchangedRows int;
    DECLARE @Chunk int = 0;
    DECLARE @LastDocNo int;

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
    IF @FullResync IS NULL OR @FullResync NOT IN ('Y', 'N')
        SET @ParameterErrors += N'The value for the parameter @FullResync is not supported: use Y (the LPS marked it a full resync) or N. ';
    IF @NowUtc IS NOT NULL AND (@NowUtc < '2000-01-01' OR @NowUtc > '9000-01-01')
        SET @ParameterErrors += N'The value for the parameter @NowUtc is not supported: give a UTC time after 2000, or NULL for now. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @ParameterErrors <> N''
        THROW 50001, @ParameterErrors, 1;

    ----------------------------------------------------------------------------
    -- Fast path: every document unchanged (an unchanged resync): done now
    ----------------------------------------------------------------------------
    SELECT @Documents = COUNT(*), @Unchanged = COUNT(pt.Cpr), @Patients = COUNT(DISTINCT x.Cpr),
        @Rows = COALESCE(SUM(x.DocRows), 0), @MaxRows = COALESCE(MAX(x.DocRows), 0)
    FROM (
        SELECT j.Cpr, HASHBYTES('SHA2_256', p.value) AS DocHash,
            (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.ValuesJson, 1) = N'[' THEN j.ValuesJson ELSE N'[]' END))
            + (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.DiagnosesJson, 1) = N'[' THEN j.DiagnosesJson ELSE N'[]' END))
            + (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.MedicationJson, 1) = N'[' THEN j.MedicationJson ELSE N'[]' END))
            + (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.ServicesJson, 1) = N'[' THEN j.ServicesJson ELSE N'[]' END))
            + (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.PropertiesJson, 1) = N'[' THEN j.PropertiesJson ELSE N'[]' END))
            AS DocRows
        FROM OPENJSON(@Document, '$.patients') AS p
        OUTER APPLY OPENJSON(CASE WHEN p.type = 5 THEN p.value END) WITH (
            Cpr nvarchar(4000) '$.cpr',
            ValuesJson nvarchar(MAX) '$.values' AS JSON,
            DiagnosesJson nvarchar(MAX) '$.diagnoses' AS JSON,
            MedicationJson nvarchar(MAX) '$.medication' AS JSON,
            ServicesJson nvarchar(MAX) '$.services' AS JSON,
            PropertiesJson nvarchar(MAX) '$.properties' AS JSON
        ) AS j
    ) AS x
    LEFT JOIN PLSP.Patient AS pt
        ON CAST(x.Cpr AS char(10)) = pt.Cpr AND LEN(x.Cpr) = 10  -- the column's type: a seek
            AND x.DocHash = pt.UploadDocumentHash;
    IF @Unchanged = @Documents AND @Patients = @Documents AND @MaxRows <= @MaxDocRows
    BEGIN
        BEGIN TRY
            BEGIN TRANSACTION;

            INSERT INTO PLSP.Upload (SorCode, Ydernummer, ReceivedUtc, StartedUtc, FinishedUtc, Status, Documents,
                RejectedDocuments, RowsUnchanged, RowsRejected, Errors, DocumentsTotal, RowsTotal, FullResync)
            VALUES (@SorCode, @Ydernummer, @Now, @Now, @Now, 'done', @Documents, 0, @Rows, 0, N'[]',
                @Documents, @Rows, CASE WHEN @FullResync = 'Y' THEN 1 ELSE 0 END);
            SET @UploadId = CAST(SCOPE_IDENTITY() AS bigint);

            UPDATE s WITH (UPDLOCK, HOLDLOCK)
            SET Uploads = s.Uploads + 1, Documents = s.Documents + @Documents, RowsUnchanged = s.RowsUnchanged + @Rows
            FROM Ops.UploadStatistic AS s
            WHERE s.SorCode = @SorCode AND s.DayUtc = @Today;
            INSERT INTO Ops.UploadStatistic (SorCode, DayUtc, Uploads, Documents, RowsUnchanged)
            SELECT @SorCode, @Today, 1, @Documents, @Rows
            WHERE NOT EXISTS (
                SELECT 1 FROM Ops.UploadStatistic AS s WITH (UPDLOCK, HOLDLOCK)
                WHERE s.SorCode = @SorCode AND s.DayUtc = @Today
            );

            COMMIT TRANSACTION;
        END TRY
        BEGIN CATCH
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;
            THROW;
        END CATCH;
        RETURN;
    END;

    ----------------------------------------------------------------------------
    -- Read the document: one row per patient document, its rows counted
    ----------------------------------------------------------------------------
    CREATE TABLE #EnqueueDoc (
        DocNo int NOT NULL PRIMARY KEY,
        Document nvarchar(MAX) COLLATE DATABASE_DEFAULT NOT NULL,
        Cpr nvarchar(4000) COLLATE DATABASE_DEFAULT NULL,
        ValueRows int NOT NULL,
        DiagnosisRows int NOT NULL,
        MedicationRows int NOT NULL,
        ServiceRows int NOT NULL,
        PropertyRows int NOT NULL,
        DocRows AS (ValueRows + DiagnosisRows + MedicationRows + ServiceRows + PropertyRows),
        DocHash binary(32) NULL,
        Duplicate bit NOT NULL DEFAULT (0),
        Repeated bit NOT NULL DEFAULT (0),
        Unchanged bit NOT NULL DEFAULT (0),
        Oversize bit NOT NULL DEFAULT (0)
    );
    INSERT INTO #EnqueueDoc (DocNo, Document, Cpr, DocHash, ValueRows, DiagnosisRows, MedicationRows, ServiceRows,
        PropertyRows)
    SELECT CAST(p.[key] AS int), p.value, j.Cpr, HASHBYTES('SHA2_256', p.value),
        (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.ValuesJson, 1) = N'[' THEN j.ValuesJson ELSE N'[]' END)),
        (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.DiagnosesJson, 1) = N'[' THEN j.DiagnosesJson ELSE N'[]' END)),
        (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.MedicationJson, 1) = N'[' THEN j.MedicationJson ELSE N'[]' END)),
        (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.ServicesJson, 1) = N'[' THEN j.ServicesJson ELSE N'[]' END)),
        (SELECT COUNT(*) FROM OPENJSON(CASE WHEN LEFT(j.PropertiesJson, 1) = N'[' THEN j.PropertiesJson ELSE N'[]' END))
    FROM OPENJSON(@Document, '$.patients') AS p
    OUTER APPLY OPENJSON(CASE WHEN p.type = 5 THEN p.value END) WITH (
        Cpr nvarchar(4000) '$.cpr',
        ValuesJson nvarchar(MAX) '$.values' AS JSON,
        DiagnosesJson nvarchar(MAX) '$.diagnoses' AS JSON,
        MedicationJson nvarchar(MAX) '$.medication' AS JSON,
        ServicesJson nvarchar(MAX) '$.services' AS JSON,
        PropertiesJson nvarchar(MAX) '$.properties' AS JSON
    ) AS j;

    WITH numbered AS (
        SELECT d.Duplicate, d.Repeated, ROW_NUMBER() OVER (PARTITION BY d.Cpr ORDER BY d.DocNo) AS Seen,
            COUNT(*) OVER (PARTITION BY d.Cpr) AS Times
        FROM #EnqueueDoc AS d
        WHERE d.Cpr IS NOT NULL
    )

    UPDATE numbered SET Duplicate = CASE WHEN Seen > 1 THEN 1 ELSE 0 END, Repeated = 1
    WHERE Times > 1;

    -- A repeated patient is its error; else a document over the row cap is (one error a document).
    UPDATE #EnqueueDoc SET Oversize = 1 WHERE DocRows > @MaxDocRows AND Duplicate = 0;

    -- Documents identical to the patient's last accepted one: done now (no write).
    UPDATE d SET Unchanged = 1
    FROM #EnqueueDoc AS d
    INNER JOIN PLSP.Patient AS p ON CAST(d.Cpr AS char(10)) = p.Cpr AND LEN(d.Cpr) = 10  -- the column's type: a seek
    WHERE p.UploadDocumentHash = d.DocHash AND d.Repeated = 0 AND d.Oversize = 0;
    SELECT @Unchanged = COUNT(*), @UnchangedRows = COALESCE(SUM(d.DocRows), 0)
    FROM #EnqueueDoc AS d
    WHERE d.Unchanged = 1;

    SELECT @Documents = COUNT(*), @Rows = COALESCE(SUM(d.DocRows), 0), @LastDocNo = MAX(d.DocNo) FROM #EnqueueDoc AS d;
    SELECT @Duplicates = COUNT(*), @DuplicateRows = COALESCE(SUM(d.DocRows), 0)
    FROM #EnqueueDoc AS d
    WHERE d.Duplicate = 1;
    SELECT @Oversize = COUNT(*), @OversizeRows = COALESCE(SUM(d.DocRows), 0)
    FROM #EnqueueDoc AS d
    WHERE d.Oversize = 1;
    SET @DuplicateErrors = COALESCE((
        SELECT e.DocNo AS [document], e.Field AS [field], e.RowNo AS [row], e.Reason AS [reason], e.Message AS [message]
        FROM (
            SELECT d.DocNo,
                CAST(NULL AS int) AS RowNo,
                CASE WHEN d.Duplicate = 1 THEN 'cpr' ELSE big.Name END AS Field,
                CASE WHEN d.Duplicate = 1 THEN 'duplicate_patient' ELSE 'too_many_rows' END AS Reason,
                CASE WHEN d.Duplicate = 1 THEN N'the same patient is in an earlier document of this upload'
                    ELSE CONCAT(N'the document holds ', d.DocRows, N' rows: at most ', @MaxDocRows, N' a document')
                END AS Message
            FROM #EnqueueDoc AS d
            CROSS APPLY (
                SELECT TOP (1) l.Name
                FROM (VALUES (1, 'values', d.ValueRows), (2, 'diagnoses', d.DiagnosisRows),
                    (3, 'medication', d.MedicationRows), (4, 'services', d.ServiceRows),
                    (5, 'properties', d.PropertyRows)) AS l (Ord, Name, ListRows)
                ORDER BY l.ListRows DESC, l.Ord ASC
            ) AS big
            WHERE d.Duplicate = 1 OR d.Oversize = 1
        ) AS e
        ORDER BY e.DocNo
        FOR JSON PATH, INCLUDE_NULL_VALUES
    ), N'[]');
    -- Refused documents: repeated patients and over the cap.
    SET @Duplicates += @Oversize;
    SET @DuplicateRows += @OversizeRows;

    ----------------------------------------------------------------------------
    -- Do the work: the job's row, its staged documents, the day's statistics
    ----------------------------------------------------------------------------
    BEGIN TRY
        BEGIN TRANSACTION;

        -- Done at once when nothing is left to apply.
        INSERT INTO PLSP.Upload (SorCode, Ydernummer, ReceivedUtc, StartedUtc, FinishedUtc, Status, Documents,
            RejectedDocuments, RowsUnchanged, RowsRejected, Errors, DocumentsTotal, RowsTotal, FullResync)
        VALUES (@SorCode, @Ydernummer, @Now,
            CASE WHEN @Duplicates + @Unchanged = @Documents THEN @Now END,
            CASE WHEN @Duplicates + @Unchanged = @Documents THEN @Now END,
            CASE WHEN @Duplicates + @Unchanged = @Documents THEN 'done' ELSE 'queued' END,
            @Duplicates + @Unchanged, @Duplicates, @UnchangedRows, @DuplicateRows,
            @DuplicateErrors, @Documents, @Rows, CASE WHEN @FullResync = 'Y' THEN 1 ELSE 0 END);
        SET @UploadId = CAST(SCOPE_IDENTITY() AS bigint);

        -- A document's weight in the drain's batches is its rows, at least 1.
        -- At most 4,000 documents a statement: SQL Server escalates to a table
        -- lock when one statement takes 5,000 locks on one index, and a table
        -- lock on Upload.StagedDocument, held to COMMIT, would block the drain's
        -- batches and every other bulk upload's enqueue until then.
        WHILE @Chunk <= @LastDocNo
        BEGIN
            INSERT INTO Upload.StagedDocument (UploadId, DocNo, DocRows, Document)
            SELECT @UploadId, d.DocNo, CASE WHEN d.DocRows < 1 THEN 1 ELSE d.DocRows END, d.Document
            FROM #EnqueueDoc AS d
            WHERE d.Duplicate = 0 AND d.Unchanged = 0 AND d.Oversize = 0 AND d.DocNo >= @Chunk AND d.DocNo < @Chunk + 4000;
            SET @Chunk += 4000;
        END;

        UPDATE s WITH (UPDLOCK, HOLDLOCK)
        SET Uploads = s.Uploads + 1, Documents = s.Documents + @Duplicates + @Unchanged,
            RejectedDocuments = s.RejectedDocuments + @Duplicates, RowsUnchanged = s.RowsUnchanged + @UnchangedRows,
            RowsRejected = s.RowsRejected + @DuplicateRows
        FROM Ops.UploadStatistic AS s
        WHERE s.SorCode = @SorCode AND s.DayUtc = @Today;
        INSERT INTO Ops.UploadStatistic (SorCode, DayUtc, Uploads, Documents, RejectedDocuments, RowsUnchanged,
            RowsRejected)
        SELECT @SorCode, @Today, 1, @Duplicates + @Unchanged, @Duplicates, @UnchangedRows, @DuplicateRows
        WHERE NOT EXISTS (
            SELECT 1 FROM Ops.UploadStatistic AS s WITH (UPDLOCK, HOLDLOCK) WHERE s.SorCode = @SorCode AND s.DayUtc = @Today
        );

        IF @Duplicates > 0
        BEGIN
            UPDATE s WITH (UPDLOCK, HOLDLOCK)
            SET RowsRejected = s.RowsRejected + r.Refused
            FROM Ops.UploadRejection AS s
            INNER JOIN (VALUES ('duplicate_patient', @Duplicates - @Oversize), ('too_many_rows', @Oversize)) AS r (Reason, Refused)
                ON s.Reason = r.Reason
            WHERE s.SorCode = @SorCode AND s.DayUtc = @Today AND r.Refused > 0;
            INSERT INTO Ops.UploadRejection (SorCode, DayUtc, Reason, RowsRejected)
            SELECT @SorCode, @Today, r.Reason, r.Refused
            FROM (VALUES ('duplicate_patient', @Duplicates - @Oversize), ('too_many_rows', @Oversize)) AS r (Reason, Refused)
            WHERE r.Refused > 0 AND NOT EXISTS (
                SELECT 1 FROM Ops.UploadRejection AS s WITH (UPDLOCK, HOLDLOCK)
                WHERE s.SorCode = @SorCode AND s.DayUtc = @Today AND s.Reason = r.Reason
            );
        END;

        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
