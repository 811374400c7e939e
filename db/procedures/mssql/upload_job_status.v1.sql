-- Upload.upload_job_status, version 1.
-- The state of one bulk upload job (Upload.upload_enqueue) for the clinic
-- @SorCode that submitted it: @State 'queued' (nothing applied yet),
-- 'running' (the drain has begun), 'done' or 'failed'; the documents
-- received and applied so far, the rows inserted, updated, unchanged and
-- rejected so far, and its errors so far (a JSON array as Upload.upload_data
-- returns them, the documents numbered as in the upload, at most about 1000);
-- for a failed upload @Reason, the document and the error that failed it
-- (Job.upload_drain_batch; never a CPR number).
-- Another clinic's upload, or none with that id, gives @State NULL: the
-- caller cannot tell the two apart. Reads only; ownership chaining reaches
-- PLSP.Upload for flp_lps.
CREATE OR ALTER PROCEDURE Upload.upload_job_status
    @SorCode varchar(20),
    @UploadId bigint,
    @State varchar(10) = NULL OUTPUT,
    @ReceivedUtc datetime2(3) = NULL OUTPUT,
    @FinishedUtc datetime2(3) = NULL OUTPUT,
    @DocumentsTotal int = NULL OUTPUT,
    @Documents int = NULL OUTPUT,
    @RejectedDocuments int = NULL OUTPUT,
    @Inserted int = NULL OUTPUT,
    @Updated int = NULL OUTPUT,
    @Unchanged int = NULL OUTPUT,
    @Rejected int = NULL OUTPUT,
    @Errors nvarchar(MAX) = NULL OUTPUT,
    @Reason nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @ParameterErrors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @SorCode IS NULL OR @SorCode = '' OR @SorCode COLLATE Latin1_General_BIN2 LIKE '%[^0-9]%'
        SET @ParameterErrors += N'The value for the parameter @SorCode is not supported: give the clinic''s SOR code (digits). ';
    IF @UploadId IS NULL OR @UploadId < 1
        SET @ParameterErrors += N'The value for the parameter @UploadId is not supported: give the job''s id (a positive number). ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @ParameterErrors <> N''
        THROW 50001, @ParameterErrors, 1;

    ----------------------------------------------------------------------------
    -- Read (the clinic's own upload only)
    ----------------------------------------------------------------------------
    SELECT
        @State = CASE WHEN u.Status = 'queued' AND u.StartedUtc IS NOT NULL THEN 'running' ELSE u.Status END,
        @ReceivedUtc = u.ReceivedUtc,
        @FinishedUtc = u.FinishedUtc,
        @DocumentsTotal = COALESCE(u.DocumentsTotal, u.Documents),
        @Documents = u.Documents,
        @RejectedDocuments = u.RejectedDocuments,
        @Inserted = u.RowsInserted,
        @Updated = u.RowsUpdated,
        @Unchanged = u.RowsUnchanged,
        @Rejected = u.RowsRejected,
        @Errors = COALESCE(u.Errors, N'[]'),
        @Reason = u.FailureReason
    FROM PLSP.Upload AS u
    WHERE u.UploadId = @UploadId AND u.SorCode = @SorCode;
END;
