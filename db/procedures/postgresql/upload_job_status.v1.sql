-- Upload.upload_job_status, version 1.
-- The state of one bulk upload job (Upload.upload_enqueue) for the clinic
-- p_SorCode that submitted it: p_State 'queued' (nothing applied yet),
-- 'running' (the drain has begun), 'done' or 'failed'; the documents
-- received and applied so far, the rows inserted, updated, unchanged and
-- rejected so far, and its errors so far (a JSON array as Upload.upload_data
-- returns them, the documents numbered as in the upload, at most about 1000);
-- for a failed upload p_Reason, the document and the error that failed it
-- (Job.upload_drain_batch; never a CPR number).
-- Another clinic's upload, or none with that id, gives p_State NULL: the
-- caller cannot tell the two apart. Reads only.
CREATE PROCEDURE Upload.upload_job_status(
    p_SorCode varchar(20),
    p_UploadId bigint,
    INOUT p_State varchar(10) DEFAULT NULL,
    INOUT p_ReceivedUtc timestamp(3) DEFAULT NULL,
    INOUT p_FinishedUtc timestamp(3) DEFAULT NULL,
    INOUT p_DocumentsTotal integer DEFAULT NULL,
    INOUT p_Documents integer DEFAULT NULL,
    INOUT p_RejectedDocuments integer DEFAULT NULL,
    INOUT p_Inserted integer DEFAULT NULL,
    INOUT p_Updated integer DEFAULT NULL,
    INOUT p_Unchanged integer DEFAULT NULL,
    INOUT p_Rejected integer DEFAULT NULL,
    INOUT p_Errors text DEFAULT NULL,
    INOUT p_Reason varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_SorCode IS NULL OR p_SorCode !~ '^[0-9]{1,20}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_SorCode is not supported: give the clinic''s SOR code (digits). ';
    END IF;
    IF p_UploadId IS NULL OR p_UploadId < 1 THEN
        v_Errors := v_Errors || 'The value for the parameter p_UploadId is not supported: give the job''s id (a positive number). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Read (the clinic's own upload only)
    ----------------------------------------------------------------------------
    SELECT CASE WHEN u.Status = 'queued' AND u.StartedUtc IS NOT NULL THEN 'running' ELSE u.Status END,
        u.ReceivedUtc, u.FinishedUtc, coalesce(u.DocumentsTotal, u.Documents), u.Documents, u.RejectedDocuments,
        u.RowsInserted, u.RowsUpdated, u.RowsUnchanged, u.RowsRejected, coalesce(u.Errors, '[]'),
        u.FailureReason
    INTO p_State, p_ReceivedUtc, p_FinishedUtc, p_DocumentsTotal, p_Documents, p_RejectedDocuments,
        p_Inserted, p_Updated, p_Unchanged, p_Rejected, p_Errors, p_Reason
    FROM PLSP.Upload AS u
    WHERE u.UploadId = p_UploadId AND u.SorCode = p_SorCode;
END;
$$;
