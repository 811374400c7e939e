-- Job.upload_drain_batch, version 1.
-- One batch of the bulk-upload drain (Job.upload_drain runs it through
-- Job.run_batched): the next staged documents (Upload.StagedDocument) of the
-- oldest queued upload that may drain now, as many as fit in @BatchSize
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
-- (anything but a lock timeout, 1222, or a deadlock, 1205, which the runner
-- retries) is rolled back and the batch returns normally; its documents'
-- Attempts go up by one in a short transaction of their own. A document
-- tried before goes alone in the next batch, so the failing one is found;
-- when it has failed alone MaxAttempts times (setting, default 3) its upload
-- is 'failed' with FailureReason 'document N: <error>' (runs of six or more
-- digits masked: never a CPR number), its staged documents are removed (in
-- statements of at most 3000 rows) and the drain goes on with the other
-- uploads in the same run.
--
-- @Position is the keyset for a dry run (UploadId * 2^20 + the next DocNo):
-- a dry run counts the batch it would apply and moves on; a real batch needs
-- none (what it applied is gone from the stage) and reports the same.
-- @Done: no staged document may drain now after this batch. Commits its own
-- short transaction; DEADLOCK_PRIORITY LOW, so an interactive upload wins a
-- deadlock against it.
CREATE OR ALTER PROCEDURE Job.upload_drain_batch
    @BatchSize int,
    @Execute char(1),
    @Position bigint = NULL OUTPUT,
    @Rows int = NULL OUTPUT,
    @Done bit = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 1000;  -- called on its own: never wait forever; reverts on return

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @OffHoursRowsText nvarchar(4000);
    DECLARE @OffHoursRows int;
    DECLARE @MaxAttemptsText nvarchar(4000);
    DECLARE @MaxAttempts int;
    DECLARE @Failed bit = 0;
    DECLARE @ErrorText nvarchar(2000);
    DECLARE @DigitRunAt int;
    DECLARE @DigitRunLength int;
    DECLARE @Attempts int;
    DECLARE @Reason nvarchar(400);
    DECLARE @Removed int;
    DECLARE @OffHours bit;
    DECLARE @LocalTime varchar(30);
    DECLARE @FromUpload bigint;
    DECLARE @FromDoc int;
    DECLARE @UploadId bigint;
    DECLARE @SorCode varchar(20);
    DECLARE @Ydernummer varchar(10);
    DECLARE @FirstDoc int;
    DECLARE @LastDoc int;
    DECLARE @Docs int;
    DECLARE @Document nvarchar(MAX);
    DECLARE @Waiting int;
    DECLARE @Result varchar(20);
    DECLARE @Documents int;
    DECLARE @RejectedDocuments int;
    DECLARE @Inserted int;
    DECLARE @Updated int;
    DECLARE @Unchanged int;
    DECLARE @Rejected int;
    DECLARE @BatchErrors nvarchar(MAX);
    DECLARE @Mapped nvarchar(MAX);
    DECLARE @AppliedUploadId bigint;
    DECLARE @Clock datetime2(3);
    DECLARE @Batch TABLE (Ord int NOT NULL PRIMARY KEY, DocNo int NOT NULL);

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.upload_drain_batch must not run inside a transaction: it commits its own short transaction. ';

    ----------------------------------------------------------------------------
    -- Check parameters (and the setting they depend on)
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (apply) or N (count only). ';
    IF @Position < 0
        SET @Errors += N'The value for the parameter @Position is not supported: give NULL or UploadId * 1048576 + DocNo. ';
    SELECT @OffHoursRowsText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName = 'upload_drain' AND s.Name = 'OffHoursRows';
    IF @OffHoursRowsText IS NULL OR @OffHoursRowsText = N'' OR LEN(@OffHoursRowsText) > 9 OR @OffHoursRowsText COLLATE Latin1_General_BIN2 LIKE N'%[^0-9]%'
        SET @Errors += N'Setting OffHoursRows (Ops.Setting, job upload_drain) is missing or not a whole number of rows (0: no upload waits for off-hours). ';
    SELECT @MaxAttemptsText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName = 'upload_drain' AND s.Name = 'MaxAttempts';
    IF @MaxAttemptsText IS NULL OR @MaxAttemptsText = N'' OR LEN(@MaxAttemptsText) > 4 OR @MaxAttemptsText COLLATE Latin1_General_BIN2 LIKE N'%[^0-9]%'
        OR TRY_CAST(@MaxAttemptsText AS int) < 1
        SET @Errors += N'Setting MaxAttempts (Ops.Setting, job upload_drain) is missing or not 1 to 9999 attempts. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;
    SET @OffHoursRows = CAST(@OffHoursRowsText AS int);
    SET @MaxAttempts = CAST(@MaxAttemptsText AS int);
    EXEC Job.off_hours_check @NowUtc = NULL, @OffHours = @OffHours OUTPUT, @LocalTime = @LocalTime OUTPUT;
    SET @FromUpload = CASE WHEN @Execute = 'N' THEN COALESCE(@Position / 1048576, 0) ELSE 0 END;
    SET @FromDoc = CASE WHEN @Execute = 'N' THEN CAST(COALESCE(@Position % 1048576, 0) AS int) ELSE 0 END;

    ----------------------------------------------------------------------------
    -- The batch: the oldest queued upload that may drain now, its next documents
    ----------------------------------------------------------------------------
    SELECT TOP (1) @UploadId = u.UploadId, @SorCode = u.SorCode, @Ydernummer = u.Ydernummer
    FROM PLSP.Upload AS u
    WHERE u.Status = 'queued' AND u.UploadId >= @FromUpload
        AND (@OffHoursRows = 0 OR @OffHours = 1 OR COALESCE(u.RowsTotal, 0) <= @OffHoursRows)
        AND EXISTS (
            SELECT 1 FROM Upload.StagedDocument AS s
            WHERE s.UploadId = u.UploadId AND (u.UploadId > @FromUpload OR s.DocNo >= @FromDoc)
        )
    ORDER BY u.UploadId;

    IF @UploadId IS NULL
    BEGIN
        SELECT @Waiting = COUNT(*) FROM PLSP.Upload AS u WHERE u.Status = 'queued';
        SET @Rows = 0;
        SET @Done = 1;
        SET @Note = CASE WHEN @Waiting = 0 THEN N'no queued upload'
            ELSE CONCAT(@Waiting, N' queued uploads wait for the off-hours window (over OffHoursRows ', @OffHoursRows,
                N' rows; local time ', @LocalTime, N')') END;
        RETURN;
    END;
    IF @UploadId > @FromUpload
        SET @FromDoc = 0;

    INSERT INTO @Batch (Ord, DocNo)
    SELECT x.Seq - 1, x.DocNo
    FROM (
        SELECT s.DocNo,
            SUM(s.DocRows) OVER (ORDER BY s.DocNo ROWS UNBOUNDED PRECEDING) - s.DocRows AS RowsBefore,
            ROW_NUMBER() OVER (ORDER BY s.DocNo) AS Seq,
            SUM(CASE WHEN s.Attempts > 0 THEN 1 ELSE 0 END) OVER (ORDER BY s.DocNo ROWS UNBOUNDED PRECEDING) AS TriedUpTo
        FROM Upload.StagedDocument AS s
        WHERE s.UploadId = @UploadId AND s.DocNo >= @FromDoc
    ) AS x
    -- a document tried before goes alone; the documents after one wait for the next batch
    WHERE x.RowsBefore < @BatchSize AND x.Seq <= @BatchSize AND (x.Seq = 1 OR x.TriedUpTo = 0);

    SELECT @FirstDoc = MIN(b.DocNo), @LastDoc = MAX(b.DocNo), @Docs = COUNT(*), @Rows = COALESCE(SUM(s.DocRows), 0)
    FROM @Batch AS b
    INNER JOIN Upload.StagedDocument AS s ON s.UploadId = @UploadId AND b.DocNo = s.DocNo;

    ----------------------------------------------------------------------------
    -- Do the work: apply, number the errors as in the upload, unstage, finish
    ----------------------------------------------------------------------------
    IF @Execute = 'Y'
    BEGIN
        BEGIN TRY
            BEGIN TRANSACTION;

            SELECT @Document = CONCAT(
                N'{"patients":[',
                STRING_AGG(CAST(s.Document AS nvarchar(MAX)), N',') WITHIN GROUP (ORDER BY s.DocNo),
                N']}'
            )
            FROM Upload.StagedDocument AS s
            WHERE s.UploadId = @UploadId AND s.DocNo BETWEEN @FirstDoc AND @LastDoc;

            EXEC Upload.upload_data
                @SorCode = @SorCode,
                @Ydernummer = @Ydernummer,
                @Document = @Document,
                @NowUtc = NULL,
                @Execute = 'Y',
                @QueuedUploadId = @UploadId,
                @Result = @Result OUTPUT,
                @Documents = @Documents OUTPUT,
                @RejectedDocuments = @RejectedDocuments OUTPUT,
                @Inserted = @Inserted OUTPUT,
                @Updated = @Updated OUTPUT,
                @Unchanged = @Unchanged OUTPUT,
                @Rejected = @Rejected OUTPUT,
                @Errors = @BatchErrors OUTPUT,
                @UploadId = @AppliedUploadId OUTPUT;

            SET @Mapped = (
                SELECT b.DocNo AS [document], e.Field AS [field], e.RowNo AS [row], e.Reason AS [reason],
                    e.Message AS [message]
                FROM OPENJSON(@BatchErrors) WITH (
                    DocOrd int '$.document', Field varchar(40) '$.field', RowNo int '$.row',
                    Reason varchar(30) '$.reason', Message nvarchar(400) '$.message'
                ) AS e
                INNER JOIN @Batch AS b ON e.DocOrd = b.Ord
                ORDER BY b.DocNo, COALESCE(e.RowNo, -1), e.Field
                FOR JSON PATH, INCLUDE_NULL_VALUES
            );

            DELETE FROM Upload.StagedDocument
            WHERE UploadId = @UploadId AND DocNo BETWEEN @FirstDoc AND @LastDoc;

            SET @Clock = SYSUTCDATETIME();
            UPDATE u
            SET Errors = CASE
                    WHEN @Mapped IS NULL THEN u.Errors
                    WHEN u.Errors IS NULL OR u.Errors = N'[]' THEN @Mapped
                    WHEN (SELECT COUNT(*) FROM OPENJSON(u.Errors)) >= 1000 THEN u.Errors
                    ELSE CONCAT(LEFT(u.Errors, LEN(u.Errors) - 1), N',', STUFF(@Mapped, 1, 1, N''))
                END,
                StartedUtc = COALESCE(u.StartedUtc, @Clock),
                Status = CASE WHEN EXISTS (SELECT 1 FROM Upload.StagedDocument AS s WHERE s.UploadId = @UploadId)
                    THEN u.Status ELSE 'done' END,
                FinishedUtc = CASE WHEN EXISTS (SELECT 1 FROM Upload.StagedDocument AS s WHERE s.UploadId = @UploadId)
                    THEN u.FinishedUtc ELSE @Clock END
            FROM PLSP.Upload AS u
            WHERE u.UploadId = @UploadId;

            COMMIT TRANSACTION;
        END TRY
        BEGIN CATCH
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;
            IF ERROR_NUMBER() IN (1205, 1222)
                THROW;  -- the runner retries these
            SET @ErrorText = RTRIM(LEFT(ERROR_MESSAGE(), 2000));
            SET @Failed = 1;
        END CATCH;
    END;

    ----------------------------------------------------------------------------
    -- A batch that raised: count the attempt; fail the upload of a document
    -- that failed alone MaxAttempts times (never a CPR number in the reason)
    ----------------------------------------------------------------------------
    IF @Failed = 1
    BEGIN
        SET @DigitRunAt = PATINDEX(N'%[0-9][0-9][0-9][0-9][0-9][0-9]%', @ErrorText);
        WHILE @DigitRunAt > 0
        BEGIN
            SET @DigitRunLength = PATINDEX(N'%[^0-9]%', CONCAT(SUBSTRING(@ErrorText, @DigitRunAt, 2000), N'x')) - 1;
            SET @ErrorText = STUFF(@ErrorText, @DigitRunAt, @DigitRunLength, REPLICATE(N'#', @DigitRunLength));
            SET @DigitRunAt = PATINDEX(N'%[0-9][0-9][0-9][0-9][0-9][0-9]%', @ErrorText);
        END;

        BEGIN TRY
            BEGIN TRANSACTION;

            UPDATE s
            SET Attempts = s.Attempts + 1
            FROM Upload.StagedDocument AS s
            WHERE s.UploadId = @UploadId AND s.DocNo BETWEEN @FirstDoc AND @LastDoc;
            SELECT @Attempts = MAX(s.Attempts)
            FROM Upload.StagedDocument AS s
            WHERE s.UploadId = @UploadId AND s.DocNo BETWEEN @FirstDoc AND @LastDoc;

            IF @Docs = 1 AND @Attempts >= @MaxAttempts
            BEGIN
                SET @Reason = LEFT(CONCAT(N'document ', @FirstDoc, N': ', @ErrorText), 400);
                SET @Clock = SYSUTCDATETIME();
                UPDATE u
                SET Status = 'failed', FailureReason = @Reason,
                    StartedUtc = COALESCE(u.StartedUtc, @Clock), FinishedUtc = @Clock
                FROM PLSP.Upload AS u
                WHERE u.UploadId = @UploadId;
                SET @Removed = 3000;
                WHILE @Removed = 3000
                BEGIN
                    DELETE TOP (3000) FROM Upload.StagedDocument
                    WHERE UploadId = @UploadId;
                    SET @Removed = @@ROWCOUNT;
                END;
            END;

            COMMIT TRANSACTION;
        END TRY
        BEGIN CATCH
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;
            THROW;
        END CATCH;
    END;

    ----------------------------------------------------------------------------
    -- Outcome: position, done, note (never a CPR number)
    ----------------------------------------------------------------------------
    SET @Position = @UploadId * 1048576 + @LastDoc + 1;
    SET @Done = CASE WHEN EXISTS (
        SELECT 1
        FROM PLSP.Upload AS u
        WHERE u.Status = 'queued'
            AND (@OffHoursRows = 0 OR @OffHours = 1 OR COALESCE(u.RowsTotal, 0) <= @OffHoursRows)
            AND EXISTS (
                SELECT 1 FROM Upload.StagedDocument AS s
                WHERE s.UploadId = u.UploadId
                    AND (@Execute = 'Y' OR u.UploadId > @UploadId OR (u.UploadId = @UploadId AND s.DocNo > @LastDoc))
            )
    ) THEN 0 ELSE 1 END;
    SET @Note = LEFT(CONCAT(
        CASE WHEN @Failed = 1 THEN N'raised on ' WHEN @Execute = 'Y' THEN N'applied ' ELSE N'would apply ' END,
        N'documents ', @FirstDoc, N'-', @LastDoc, N' (', @Docs, N', ', @Rows, N' rows) of upload ', @UploadId,
        CASE
            WHEN @Failed = 1 AND @Docs = 1 AND @Attempts >= @MaxAttempts THEN CONCAT(
                N' (attempt ', @Attempts, N' of ', @MaxAttempts, N'): upload failed, its staged documents removed: ',
                @ErrorText)
            WHEN @Failed = 1 THEN CONCAT(N' (attempt ', @Attempts, N' of ', @MaxAttempts, N'), rolled back: ', @ErrorText)
            WHEN @Execute = 'Y' THEN CONCAT(N': ', @Inserted, N' inserted, ', @Updated, N' updated, ',
                @Unchanged, N' unchanged, ', @RejectedDocuments, N' documents rejected')
        END
    ), 400);
    IF @Failed = 1
        SET @Rows = 0;  -- nothing applied
END;
