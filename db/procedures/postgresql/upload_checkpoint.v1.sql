-- Upload.upload_checkpoint, version 1.
-- The per-LPS sync checkpoint: what the database already holds from the
-- clinic p_SorCode. p_SyncToken names its last applied upload ('u' and the
-- UploadId; NULL when it has none), with the time it finished, the uploads
-- applied and the rows stored (inserted + updated). An LPS that keeps the
-- token can send only what changed after it (a resync "since checkpoint")
-- instead of years of unchanged rows; an unchanged full resync stays a cheap
-- no-op either way (content hashes, Upload.upload_data).
-- Runs with the owner's rights; reads only.
CREATE PROCEDURE Upload.upload_checkpoint(
    p_SorCode varchar(20),
    INOUT p_SyncToken varchar(30) DEFAULT NULL,
    INOUT p_LastUploadUtc timestamp(3) DEFAULT NULL,
    INOUT p_Uploads bigint DEFAULT NULL,
    INOUT p_RowsStored bigint DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_LastId bigint;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check (a read).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_SorCode IS NULL OR p_SorCode !~ '^[0-9]{1,20}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_SorCode is not supported: give the clinic''s SOR code (digits). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work (reads only): the clinic's applied uploads (IX_Upload_Sor)
    ----------------------------------------------------------------------------
    SELECT max(u.UploadId), max(u.FinishedUtc), count(*), coalesce(sum(u.RowsInserted + u.RowsUpdated), 0)
    INTO v_LastId, p_LastUploadUtc, p_Uploads, p_RowsStored
    FROM PLSP.Upload AS u
    WHERE u.SorCode = p_SorCode AND u.Status = 'done';
    p_SyncToken := CASE WHEN v_LastId IS NULL THEN NULL ELSE 'u' || v_LastId END;
END;
$$;
