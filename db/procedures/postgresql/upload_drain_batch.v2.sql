-- Job.upload_drain_batch, version 2.
-- One batch of the bulk-upload drain (Job.upload_drain runs it through
-- Job.run_batched): the next staged documents (Upload.StagedDocument) of the
-- oldest queued upload that may drain now, as many as fit in p_BatchSize
-- rows (a document weighs its rows, at least 1; the first document always
-- goes, because a document is applied whole), applied by Upload.upload_data
-- (validated, atomic per document, idempotent by content hash) and deleted
-- from the stage in the same transaction. A crash at any point therefore
-- loses nothing and applies nothing twice: the transaction commits the
-- applied rows, the counts, the errors and the deletion together, or none.
-- The errors are appended to the upload's row (while it holds fewer than
-- 1000) with the documents numbered as in the whole upload. When the last
-- staged document of an upload is applied, the upload is done.
-- An upload with more rows than the setting OffHoursRows (Ops.Setting, job
-- upload_drain; 0: none waits) drains only in the off-hours window
-- (Job.off_hours_check); smaller uploads behind it go first.
--
-- A poison document cannot block the drain: a batch whose apply raises
-- (anything but a lock timeout or a deadlock, which the runner retries, or a
-- resource error, a cancel or a timeout, which fail the run) is
-- rolled back and the batch returns normally; its documents' Attempts go up
-- by one, committed by the runner. A document tried before goes alone in
-- the next batch, so the failing one is found; when it has failed
-- MaxAttempts times (setting, default 3; a failed batch it was part of counts
-- too), the last of them alone, it is
-- dead-lettered: moved to Upload.DeadLetterDocument with its error (runs of
-- six or more digits masked: never a CPR number), counted as a rejected
-- document of its upload with the error dead_lettered naming it, and the
-- drain goes on with the upload's later documents (the ones after it in its
-- first batch included) and with the other uploads, in the same run.
-- Version 2 (issue 11): version 1 failed the whole upload there and removed
-- its later staged documents unapplied.
--
-- p_Position is the keyset for a dry run (UploadId * 2^20 + the next DocNo):
-- a dry run counts the batch it would apply and moves on; a real batch needs
-- none (what it applied is gone from the stage) and reports the same.
-- p_Done: no staged document may drain now after this batch. Runs with the
-- owner's rights; does not COMMIT (the runner does).
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * No transaction control: the runner commits (T-SQL: its own short transactions).
--   * The apply is a block with an EXCEPTION clause (a subtransaction), the failure recorded after it in the runner's transaction (T-SQL: ROLLBACK in CATCH, then a short transaction of its own).
--   * No IMPLICIT_TRANSACTIONS, DEADLOCK_PRIORITY or LOCK_TIMEOUT to set (the runner sets lock_timeout).
--   * jsonb rebuilds the errors (T-SQL: OPENJSON and FOR JSON).
--   * Job.off_hours_check is called by a dynamic CALL, so either of its versions answers (T-SQL: named arguments).
CREATE PROCEDURE Job.upload_drain_batch(
    p_BatchSize integer,
    p_Execute char(1),
    INOUT p_Position bigint DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Done boolean DEFAULT NULL,
    INOUT p_Note varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_OffHoursRowsText text;
    v_OffHoursRows integer;
    v_MaxAttemptsText text;
    v_MaxAttempts integer;
    v_Failed boolean := false;
    v_ErrorText text;
    v_DigitRun text;
    v_Attempts integer;
    v_Reason varchar(400);
    v_OffHours boolean;
    v_LocalTime varchar(30);
    v_FromUpload bigint;
    v_FromDoc integer;
    v_UploadId bigint;
    v_SorCode varchar(20);
    v_Ydernummer varchar(10);
    v_FirstDoc integer;
    v_LastDoc integer;
    v_Docs integer;
    v_Document text;
    v_Waiting integer;
    v_Result varchar(20);
    v_Documents integer;
    v_RejectedDocuments integer;
    v_Inserted integer;
    v_Updated integer;
    v_Unchanged integer;
    v_Rejected integer;
    v_BatchErrors text;
    v_AppliedUploadId bigint;
    v_Clock timestamp(3);
    v_Left boolean;
    v_DocRows integer;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; this procedure has no transaction
    -- control (the runner, Job.run_batched, commits after the call).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters (and the setting they depend on)
    ----------------------------------------------------------------------------
    IF p_BatchSize IS NULL OR p_BatchSize < 1 OR p_BatchSize > 4000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (apply) or N (count only). ';
    END IF;
    IF p_Position < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give NULL or UploadId * 1048576 + DocNo. ';
    END IF;
    SELECT s.Value INTO v_OffHoursRowsText
    FROM Ops.Setting AS s
    WHERE s.JobName = 'upload_drain' AND s.Name = 'OffHoursRows';
    IF v_OffHoursRowsText IS NULL OR v_OffHoursRowsText !~ '^[0-9]{1,9}$' THEN
        v_Errors := v_Errors || 'Setting OffHoursRows (Ops.Setting, job upload_drain) is missing or not a whole number of rows (0: no upload waits for off-hours). ';
    END IF;
    SELECT s.Value INTO v_MaxAttemptsText
    FROM Ops.Setting AS s
    WHERE s.JobName = 'upload_drain' AND s.Name = 'MaxAttempts';
    IF v_MaxAttemptsText IS NULL OR v_MaxAttemptsText !~ '^[0-9]{1,4}$' OR v_MaxAttemptsText::integer < 1 THEN
        v_Errors := v_Errors || 'Setting MaxAttempts (Ops.Setting, job upload_drain) is missing or not 1 to 9999 attempts. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;
    v_OffHoursRows := v_OffHoursRowsText::integer;
    v_MaxAttempts := v_MaxAttemptsText::integer;
    -- A top-level CALL, its first two outputs taken: the same for off_hours_check version 1 and
    -- version 2 (which adds the output p_Holiday), as the T-SQL twin's named arguments are.
    EXECUTE 'CALL Job.off_hours_check(NULL)' INTO v_OffHours, v_LocalTime;
    v_FromUpload := CASE WHEN p_Execute = 'N' THEN coalesce(p_Position / 1048576, 0) ELSE 0 END;
    v_FromDoc := CASE WHEN p_Execute = 'N' THEN coalesce(p_Position % 1048576, 0)::integer ELSE 0 END;

    ----------------------------------------------------------------------------
    -- The batch: the oldest queued upload that may drain now, its next documents
    ----------------------------------------------------------------------------
    SELECT u.UploadId, u.SorCode, u.Ydernummer INTO v_UploadId, v_SorCode, v_Ydernummer
    FROM PLSP.Upload AS u
    WHERE u.Status = 'queued' AND u.UploadId >= v_FromUpload
        AND (v_OffHoursRows = 0 OR v_OffHours OR coalesce(u.RowsTotal, 0) <= v_OffHoursRows)
        AND EXISTS (
            SELECT 1 FROM Upload.StagedDocument AS s
            WHERE s.UploadId = u.UploadId AND (u.UploadId > v_FromUpload OR s.DocNo >= v_FromDoc)
        )
    ORDER BY u.UploadId
    LIMIT 1;

    IF v_UploadId IS NULL THEN
        SELECT count(*) INTO v_Waiting FROM PLSP.Upload AS u WHERE u.Status = 'queued';
        p_Rows := 0;
        p_Done := true;
        p_Note := CASE WHEN v_Waiting = 0 THEN 'no queued upload'
            ELSE format('%s queued uploads wait for the off-hours window (over OffHoursRows %s rows; local time %s)',
                v_Waiting, v_OffHoursRows, v_LocalTime) END;
        RETURN;
    END IF;
    IF v_UploadId > v_FromUpload THEN
        v_FromDoc := 0;
    END IF;

    SELECT min(x.DocNo), max(x.DocNo), count(*), coalesce(sum(x.DocRows), 0)
    INTO v_FirstDoc, v_LastDoc, v_Docs, p_Rows
    FROM (
        SELECT s.DocNo, s.DocRows,
            sum(s.DocRows) OVER (ORDER BY s.DocNo) - s.DocRows AS RowsBefore,
            row_number() OVER (ORDER BY s.DocNo) AS Seq,
            sum(CASE WHEN s.Attempts > 0 THEN 1 ELSE 0 END) OVER (ORDER BY s.DocNo) AS TriedUpTo
        FROM Upload.StagedDocument AS s
        WHERE s.UploadId = v_UploadId AND s.DocNo >= v_FromDoc
        -- at most p_BatchSize documents a batch: the running sums stop there (DBA review F13)
        ORDER BY s.DocNo
        LIMIT p_BatchSize
    ) AS x
    -- a document tried before goes alone; the documents after one wait for the next batch
    WHERE x.RowsBefore < p_BatchSize AND x.Seq <= p_BatchSize AND (x.Seq = 1 OR x.TriedUpTo = 0);

    ----------------------------------------------------------------------------
    -- Do the work: apply, number the errors as in the upload, unstage, finish
    ----------------------------------------------------------------------------
    IF p_Execute = 'Y' THEN
        BEGIN
            SELECT '{"patients":[' || string_agg(s.Document, ',' ORDER BY s.DocNo) || ']}' INTO v_Document
            FROM Upload.StagedDocument AS s
            WHERE s.UploadId = v_UploadId AND s.DocNo BETWEEN v_FirstDoc AND v_LastDoc;

            CALL Upload.upload_data(
                v_SorCode, v_Ydernummer, v_Document, NULL, 'Y', v_UploadId,
                v_Result, v_Documents, v_RejectedDocuments, v_Inserted, v_Updated, v_Unchanged, v_Rejected,
                v_BatchErrors, v_AppliedUploadId
            );

            UPDATE PLSP.Upload AS u
            SET Errors = (coalesce(u.Errors, '[]')::jsonb || (
                SELECT coalesce(jsonb_agg(jsonb_set(e.j, '{document}', to_jsonb(b.DocNo)) ORDER BY e.ord), '[]'::jsonb)
                FROM jsonb_array_elements(v_BatchErrors::jsonb) WITH ORDINALITY AS e (j, ord)
                INNER JOIN (
                    SELECT s.DocNo, (row_number() OVER (ORDER BY s.DocNo) - 1)::integer AS Ord
                    FROM Upload.StagedDocument AS s
                    WHERE s.UploadId = v_UploadId AND s.DocNo BETWEEN v_FirstDoc AND v_LastDoc
                ) AS b ON b.Ord = (e.j ->> 'document')::integer
            ))::text
            WHERE u.UploadId = v_UploadId AND v_BatchErrors <> '[]'
                AND jsonb_array_length(coalesce(u.Errors, '[]')::jsonb) < 1000;

            DELETE FROM Upload.StagedDocument AS s
            WHERE s.UploadId = v_UploadId AND s.DocNo BETWEEN v_FirstDoc AND v_LastDoc;

            v_Clock := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
            v_Left := EXISTS (SELECT 1 FROM Upload.StagedDocument AS s WHERE s.UploadId = v_UploadId);
            UPDATE PLSP.Upload AS u
            SET StartedUtc = coalesce(u.StartedUtc, v_Clock),
                Status = CASE WHEN v_Left THEN u.Status ELSE 'done' END,
                FinishedUtc = CASE WHEN v_Left THEN u.FinishedUtc ELSE v_Clock END
            WHERE u.UploadId = v_UploadId;
        EXCEPTION
            WHEN lock_not_available OR deadlock_detected THEN
                RAISE;  -- the runner rolls back and retries these
            WHEN insufficient_resources OR operator_intervention OR system_error
                OR serialization_failure OR internal_error THEN
                -- Not the document's fault (out of memory or disk, a cancel or
                -- statement timeout, I/O): the run fails, the documents stay
                -- staged, no attempt counted (DBA review F11).
                RAISE;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_ErrorText = MESSAGE_TEXT;
                v_Failed := true;
        END;
    END IF;

    ----------------------------------------------------------------------------
    -- A batch that raised: count the attempt; dead-letter a document
    -- that failed alone MaxAttempts times (never a CPR number in the reason)
    ----------------------------------------------------------------------------
    IF v_Failed THEN
        v_ErrorText := rtrim(left(v_ErrorText, 2000));
        v_DigitRun := substring(v_ErrorText FROM '[0-9]{6,}');
        WHILE v_DigitRun IS NOT NULL LOOP
            v_ErrorText := overlay(v_ErrorText PLACING repeat('#', length(v_DigitRun))
                FROM position(v_DigitRun IN v_ErrorText) FOR length(v_DigitRun));
            v_DigitRun := substring(v_ErrorText FROM '[0-9]{6,}');
        END LOOP;

        UPDATE Upload.StagedDocument AS s
        SET Attempts = s.Attempts + 1
        WHERE s.UploadId = v_UploadId AND s.DocNo BETWEEN v_FirstDoc AND v_LastDoc;
        SELECT max(s.Attempts) INTO v_Attempts
        FROM Upload.StagedDocument AS s
        WHERE s.UploadId = v_UploadId AND s.DocNo BETWEEN v_FirstDoc AND v_LastDoc;

        IF v_Docs = 1 AND v_Attempts >= v_MaxAttempts THEN
            -- Dead-letter the poison document alone; its upload goes on.
            v_Reason := left(v_ErrorText, 400);
            v_Clock := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
            INSERT INTO Upload.DeadLetterDocument (UploadId, DocNo, DocRows, Document, Attempts, Reason, DeadLetteredUtc)
            SELECT s.UploadId, s.DocNo, s.DocRows, s.Document, s.Attempts, v_Reason, v_Clock
            FROM Upload.StagedDocument AS s
            WHERE s.UploadId = v_UploadId AND s.DocNo = v_FirstDoc;
            DELETE FROM Upload.StagedDocument AS s
            WHERE s.UploadId = v_UploadId AND s.DocNo = v_FirstDoc
            RETURNING s.DocRows INTO v_DocRows;
            v_Left := EXISTS (SELECT 1 FROM Upload.StagedDocument AS s WHERE s.UploadId = v_UploadId);
            UPDATE PLSP.Upload AS u
            SET Documents = u.Documents + 1, RejectedDocuments = u.RejectedDocuments + 1,
                RowsRejected = u.RowsRejected + v_DocRows,
                Errors = CASE WHEN jsonb_array_length(coalesce(u.Errors, '[]')::jsonb) < 1000
                    THEN (coalesce(u.Errors, '[]')::jsonb || jsonb_build_array(jsonb_build_object(
                        'document', v_FirstDoc, 'field', 'document', 'row', NULL, 'reason', 'dead_lettered',
                        'message', left(format('not applied (dead-lettered after %s attempts): %s', v_Attempts, v_ErrorText), 400))))::text
                    ELSE u.Errors END,
                StartedUtc = coalesce(u.StartedUtc, v_Clock),
                Status = CASE WHEN v_Left THEN u.Status ELSE 'done' END,
                FinishedUtc = CASE WHEN v_Left THEN u.FinishedUtc ELSE v_Clock END
            WHERE u.UploadId = v_UploadId;
            INSERT INTO Ops.UploadStatistic AS t (SorCode, DayUtc, Documents, RejectedDocuments, RowsRejected)
            VALUES (v_SorCode, v_Clock::date, 1, 1, v_DocRows)
            ON CONFLICT (SorCode, DayUtc) DO UPDATE
            SET Documents = t.Documents + 1, RejectedDocuments = t.RejectedDocuments + 1,
                RowsRejected = t.RowsRejected + EXCLUDED.RowsRejected;
            INSERT INTO Ops.UploadRejection AS t (SorCode, DayUtc, Reason, RowsRejected)
            VALUES (v_SorCode, v_Clock::date, 'dead_lettered', 1)
            ON CONFLICT (SorCode, DayUtc, Reason) DO UPDATE SET RowsRejected = t.RowsRejected + EXCLUDED.RowsRejected;
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Outcome: position, done, note (never a CPR number)
    ----------------------------------------------------------------------------
    p_Position := v_UploadId * 1048576 + v_LastDoc + 1;
    p_Done := NOT EXISTS (
        SELECT 1
        FROM PLSP.Upload AS u
        WHERE u.Status = 'queued'
            AND (v_OffHoursRows = 0 OR v_OffHours OR coalesce(u.RowsTotal, 0) <= v_OffHoursRows)
            AND EXISTS (
                SELECT 1 FROM Upload.StagedDocument AS s
                WHERE s.UploadId = u.UploadId
                    AND (p_Execute = 'Y' OR u.UploadId > v_UploadId OR (u.UploadId = v_UploadId AND s.DocNo > v_LastDoc))
            )
    );
    p_Note := left(concat(
        CASE WHEN v_Failed THEN 'raised on ' WHEN p_Execute = 'Y' THEN 'applied ' ELSE 'would apply ' END,
        'documents ', v_FirstDoc, '-', v_LastDoc, ' (', v_Docs, ', ', p_Rows, ' rows) of upload ', v_UploadId,
        CASE
            WHEN v_Failed AND v_Docs = 1 AND v_Attempts >= v_MaxAttempts THEN concat(
                ' (attempt ', v_Attempts, ' of ', v_MaxAttempts, '): dead-lettered, the upload goes on: ',
                v_ErrorText)
            WHEN v_Failed THEN concat(' (attempt ', v_Attempts, ' of ', v_MaxAttempts, '), rolled back: ', v_ErrorText)
            WHEN p_Execute = 'Y' THEN concat(': ', v_Inserted, ' inserted, ', v_Updated, ' updated, ',
                v_Unchanged, ' unchanged, ', v_RejectedDocuments, ' documents rejected')
        END
    ), 400);
    IF v_Failed THEN
        p_Rows := 0;  -- nothing applied
    END IF;
END;
$$;
