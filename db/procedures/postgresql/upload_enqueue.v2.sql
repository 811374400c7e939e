-- Upload.upload_enqueue, version 2.
-- Accepts a bulk upload (issue 11, docs/http.md: over the service's size
-- threshold, or marked by the LPS as a full resync) as a job: one PLSP.Upload
-- row with Status 'queued' and every patient document of p_Document (the
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
-- p_UploadId is the job's id (its status: Upload.upload_job_status);
-- p_Documents and p_Rows what it holds. Nothing here is ever a CPR number.
-- Version 2 (issue 11): a document of more than 4000 rows (c_MaxDocRows: the
-- drain applies a document whole in one batch, and a batch stays under SQL
-- Server's lock escalation at 5,000 locks) is rejected here with
-- too_many_rows, naming the document and its largest list as the field, and
-- not staged: nothing of it is written; the other documents go on.
-- An unchanged resync takes a fast path: when every document is its
-- patient's last accepted one (and no patient repeats, none is over the cap),
-- one SELECT finds it and the job is recorded done, without the temporary
-- table (which cost about half of an unchanged 200-document call).
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: jsonb
-- functions read the document (T-SQL: OPENJSON); a staged document is its
-- jsonb text (T-SQL: its text as sent), the same text Upload.upload_data
-- hashes on each engine; ON CONFLICT for the statistics (T-SQL: UPDATE WITH
-- (UPDLOCK, HOLDLOCK) then INSERT WHERE NOT EXISTS).
CREATE PROCEDURE Upload.upload_enqueue(
    p_SorCode varchar(20),
    p_Ydernummer varchar(10),
    p_Document text,
    p_FullResync char(1) DEFAULT 'N',
    p_NowUtc timestamp(3) DEFAULT NULL,
    INOUT p_UploadId bigint DEFAULT NULL,
    INOUT p_Documents integer DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_MaxDocRows constant integer := 4000;  -- rows a document: the drain's largest batch (p_BatchSize)
    v_Errors text := '';
    v_Now timestamp(3) := coalesce(p_NowUtc, date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC'));
    v_Json jsonb;
    v_Duplicates integer;
    v_DuplicateRows integer;
    v_DuplicateErrors text;
    v_Oversize integer;
    v_OversizeRows integer;
    v_Unchanged integer;
    v_UnchangedRows integer;
    v_Patients integer;
    v_MaxRows integer;
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
    IF p_FullResync IS NULL OR p_FullResync NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_FullResync is not supported: use Y (the LPS marked it a full resync) or N. ';
    END IF;
    IF p_NowUtc IS NOT NULL AND (p_NowUtc < '2000-01-01' OR p_NowUtc > '9000-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_NowUtc is not supported: give a UTC time after 2000, or NULL for now. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Fast path: every document unchanged (an unchanged resync): done now
    ----------------------------------------------------------------------------
    SELECT count(*), count(p.Cpr), count(DISTINCT x.Cpr), coalesce(sum(x.DocRows), 0)::integer,
        coalesce(max(x.DocRows), 0)
    INTO p_Documents, v_Unchanged, v_Patients, p_Rows, v_MaxRows
    FROM (
        SELECT CASE WHEN jsonb_typeof(d.doc) = 'object' THEN d.doc ->> 'cpr' END AS Cpr,
            sha256(convert_to(d.doc::text, 'UTF8')) AS DocHash,
            (SELECT coalesce(sum(jsonb_array_length(d.doc -> l.Name)), 0)
             FROM (VALUES ('values'), ('diagnoses'), ('medication'), ('services'), ('properties')) AS l (Name)
             WHERE jsonb_typeof(d.doc) = 'object' AND jsonb_typeof(d.doc -> l.Name) = 'array')::integer AS DocRows
        FROM jsonb_array_elements(v_Json -> 'patients') AS d (doc)
    ) AS x
    LEFT JOIN PLSP.Patient AS p
        ON p.Cpr = x.Cpr::char(10) AND length(x.Cpr) = 10 AND p.UploadDocumentHash = x.DocHash;
    IF v_Unchanged = p_Documents AND v_Patients = p_Documents AND v_MaxRows <= c_MaxDocRows THEN
        INSERT INTO PLSP.Upload (SorCode, Ydernummer, ReceivedUtc, StartedUtc, FinishedUtc, Status, Documents,
            RejectedDocuments, RowsUnchanged, RowsRejected, Errors, DocumentsTotal, RowsTotal, FullResync)
        VALUES (p_SorCode, p_Ydernummer, v_Now, v_Now, v_Now, 'done', p_Documents, 0, p_Rows, 0, '[]',
            p_Documents, p_Rows, p_FullResync = 'Y')
        RETURNING UploadId INTO p_UploadId;
        INSERT INTO Ops.UploadStatistic AS s (SorCode, DayUtc, Uploads, Documents, RowsUnchanged)
        VALUES (p_SorCode, v_Now::date, 1, p_Documents, p_Rows)
        ON CONFLICT (SorCode, DayUtc) DO UPDATE
        SET Uploads = s.Uploads + 1, Documents = s.Documents + EXCLUDED.Documents,
            RowsUnchanged = s.RowsUnchanged + EXCLUDED.RowsUnchanged;
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Read the document: one row per patient document, its rows counted
    ----------------------------------------------------------------------------
    DROP TABLE IF EXISTS pg_temp.enqueue_doc;
    CREATE TEMP TABLE enqueue_doc ON COMMIT DROP AS
    SELECT x.DocNo, x.Document, x.DocRows, x.Cpr,
        x.Cpr IS NOT NULL AND row_number() OVER (PARTITION BY x.Cpr ORDER BY x.DocNo) > 1 AS Duplicate,
        count(*) OVER (PARTITION BY x.Cpr) > 1 AS Repeated,
        sha256(convert_to(x.Document, 'UTF8')) AS DocHash,
        false AS Unchanged,
        x.DocRows > c_MaxDocRows AS Oversize, x.BigList
    FROM (
        SELECT (d.ord - 1)::integer AS DocNo,
            d.doc::text AS Document,
            CASE WHEN jsonb_typeof(d.doc) = 'object' THEN d.doc ->> 'cpr' END AS Cpr,
            (SELECT coalesce(sum(jsonb_array_length(d.doc -> l.Name)), 0)
             FROM (VALUES ('values'), ('diagnoses'), ('medication'), ('services'), ('properties')) AS l (Name)
             WHERE jsonb_typeof(d.doc) = 'object' AND jsonb_typeof(d.doc -> l.Name) = 'array')::integer AS DocRows,
            (SELECT l.Name
             FROM (VALUES (1, 'values'), (2, 'diagnoses'), (3, 'medication'), (4, 'services'), (5, 'properties')) AS l (Ord, Name)
             WHERE jsonb_typeof(d.doc) = 'object' AND jsonb_typeof(d.doc -> l.Name) = 'array'
             ORDER BY jsonb_array_length(d.doc -> l.Name) DESC, l.Ord
             LIMIT 1) AS BigList
        FROM jsonb_array_elements(v_Json -> 'patients') WITH ORDINALITY AS d (doc, ord)
    ) AS x;

    SELECT count(*), coalesce(sum(e.DocRows), 0)::integer INTO p_Documents, p_Rows FROM enqueue_doc AS e;
    -- A repeated patient is its error; else a document over the row cap is (one error a document).
    UPDATE enqueue_doc AS e SET Oversize = false WHERE e.Duplicate;
    SELECT count(*) FILTER (WHERE e.Duplicate), coalesce(sum(e.DocRows) FILTER (WHERE e.Duplicate), 0)::integer,
        count(*) FILTER (WHERE e.Oversize), coalesce(sum(e.DocRows) FILTER (WHERE e.Oversize), 0)::integer,
        coalesce(jsonb_agg(CASE WHEN e.Duplicate
            THEN jsonb_build_object('document', e.DocNo, 'field', 'cpr', 'row', NULL, 'reason', 'duplicate_patient',
                'message', 'the same patient is in an earlier document of this upload')
            ELSE jsonb_build_object('document', e.DocNo, 'field', e.BigList, 'row', NULL, 'reason', 'too_many_rows',
                'message', format('the document holds %s rows: at most %s a document', e.DocRows, c_MaxDocRows))
            END ORDER BY e.DocNo), '[]'::jsonb)::text
    INTO v_Duplicates, v_DuplicateRows, v_Oversize, v_OversizeRows, v_DuplicateErrors
    FROM enqueue_doc AS e
    WHERE e.Duplicate OR e.Oversize;

    -- Documents identical to the patient's last accepted one: done now (no write).
    UPDATE enqueue_doc AS e SET Unchanged = true
    FROM PLSP.Patient AS p
    WHERE p.Cpr = e.Cpr::char(10) AND length(e.Cpr) = 10 AND p.UploadDocumentHash = e.DocHash AND NOT e.Repeated
        AND NOT e.Oversize;
    SELECT count(*), coalesce(sum(e.DocRows), 0)::integer INTO v_Unchanged, v_UnchangedRows
    FROM enqueue_doc AS e
    WHERE e.Unchanged;

    ----------------------------------------------------------------------------
    -- Do the work: the job's row, its staged documents, the day's statistics
    ----------------------------------------------------------------------------
    -- Done at once when nothing is left to apply. Refused documents: repeated patients and over the cap.
    v_Duplicates := v_Duplicates + v_Oversize;
    v_DuplicateRows := v_DuplicateRows + v_OversizeRows;
    INSERT INTO PLSP.Upload (SorCode, Ydernummer, ReceivedUtc, StartedUtc, FinishedUtc, Status, Documents,
        RejectedDocuments, RowsUnchanged, RowsRejected, Errors, DocumentsTotal, RowsTotal, FullResync)
    VALUES (p_SorCode, p_Ydernummer, v_Now,
        CASE WHEN v_Duplicates + v_Unchanged = p_Documents THEN v_Now END,
        CASE WHEN v_Duplicates + v_Unchanged = p_Documents THEN v_Now END,
        CASE WHEN v_Duplicates + v_Unchanged = p_Documents THEN 'done' ELSE 'queued' END,
        v_Duplicates + v_Unchanged, v_Duplicates, v_UnchangedRows, v_DuplicateRows,
        v_DuplicateErrors, p_Documents, p_Rows, p_FullResync = 'Y')
    RETURNING UploadId INTO p_UploadId;

    -- A document's weight in the drain's batches is its rows, at least 1.
    INSERT INTO Upload.StagedDocument (UploadId, DocNo, DocRows, Document)
    SELECT p_UploadId, e.DocNo, greatest(e.DocRows, 1), e.Document
    FROM enqueue_doc AS e
    WHERE NOT e.Duplicate AND NOT e.Unchanged AND NOT e.Oversize;

    INSERT INTO Ops.UploadStatistic AS s (SorCode, DayUtc, Uploads, Documents, RejectedDocuments, RowsUnchanged,
        RowsRejected)
    VALUES (p_SorCode, v_Now::date, 1, v_Duplicates + v_Unchanged, v_Duplicates, v_UnchangedRows, v_DuplicateRows)
    ON CONFLICT (SorCode, DayUtc) DO UPDATE
    SET Uploads = s.Uploads + 1, Documents = s.Documents + EXCLUDED.Documents,
        RejectedDocuments = s.RejectedDocuments + EXCLUDED.RejectedDocuments,
        RowsUnchanged = s.RowsUnchanged + EXCLUDED.RowsUnchanged,
        RowsRejected = s.RowsRejected + EXCLUDED.RowsRejected;

    IF v_Duplicates - v_Oversize > 0 THEN
        INSERT INTO Ops.UploadRejection AS s (SorCode, DayUtc, Reason, RowsRejected)
        VALUES (p_SorCode, v_Now::date, 'duplicate_patient', v_Duplicates - v_Oversize)
        ON CONFLICT (SorCode, DayUtc, Reason) DO UPDATE SET RowsRejected = s.RowsRejected + EXCLUDED.RowsRejected;
    END IF;
    IF v_Oversize > 0 THEN
        INSERT INTO Ops.UploadRejection AS s (SorCode, DayUtc, Reason, RowsRejected)
        VALUES (p_SorCode, v_Now::date, 'too_many_rows', v_Oversize)
        ON CONFLICT (SorCode, DayUtc, Reason) DO UPDATE SET RowsRejected = s.RowsRejected + EXCLUDED.RowsRejected;
    END IF;
END;
$$;
