-- Api.cda_version_register, version 1.
-- The document version of a care plan for the content the service just read
-- (orchestrator/cda/versions.py: SHA-256 hex of the plan's clinical content).
-- When the newest PLSP.CdaDocumentVersion row has the same hash, that version
-- is returned (p_Created 'N'): same data, same version. Otherwise the next
-- version is made (p_Created 'Y') with a new document id, and
-- PLSP.Forloebsplan.VersionNumber follows it; p_PreviousDocumentId names the
-- version it replaces (relatedDocument RPLC), NULL for the first. The first
-- version takes the plan's VersionNumber as it stands (versions the system we
-- replace issued are not counted twice). The plan row is locked for the
-- decision, so two requests at once make one version.
-- Twin differences: SELECT ... FOR UPDATE here, UPDLOCK/HOLDLOCK in a transaction on SQL Server.
CREATE PROCEDURE Api.cda_version_register(
    p_ForloebsplanId bigint,
    p_ContentHash char(64),
    p_NowUtc timestamp(3) DEFAULT NULL,
    INOUT p_VersionNumber integer DEFAULT NULL,
    INOUT p_DocumentId uuid DEFAULT NULL,
    INOUT p_CreatedUtc timestamp(3) DEFAULT NULL,
    INOUT p_PreviousDocumentId uuid DEFAULT NULL,
    INOUT p_Created char(1) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_NowUtc timestamp(3) := coalesce(p_NowUtc, (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3));
    v_PlanVersion integer;
    v_LastVersion integer;
    v_LastHash char(64);
    v_LastDocumentId uuid;
    v_LastCreatedUtc timestamp(3);
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_ForloebsplanId IS NULL OR p_ForloebsplanId < 1 THEN
        v_Errors := v_Errors || 'The value for the parameter p_ForloebsplanId is not supported: give a care plan''s id (1 or more). ';
    END IF;
    IF p_ContentHash IS NULL OR p_ContentHash !~ '^[0-9a-f]{64}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_ContentHash is not supported: give a SHA-256 as 64 lower-case hex digits. ';
    END IF;
    IF p_NowUtc IS NOT NULL AND (p_NowUtc < '2000-01-01' OR p_NowUtc >= '2100-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_NowUtc is not supported: give a UTC time from 2000 to 2099, or NULL for now. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Lock the plan, read its newest version
    ----------------------------------------------------------------------------
    SELECT f.VersionNumber INTO v_PlanVersion
    FROM PLSP.Forloebsplan AS f
    WHERE f.ForloebsplanId = p_ForloebsplanId
    FOR UPDATE;
    IF v_PlanVersion IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001',
            MESSAGE = 'The value for the parameter p_ForloebsplanId is not supported: no care plan has this id. ';
    END IF;

    SELECT dv.VersionNumber, dv.ContentHash, dv.DocumentId, dv.CreatedUtc
    INTO v_LastVersion, v_LastHash, v_LastDocumentId, v_LastCreatedUtc
    FROM PLSP.CdaDocumentVersion AS dv
    WHERE dv.ForloebsplanId = p_ForloebsplanId
    ORDER BY dv.VersionNumber DESC
    LIMIT 1;

    ----------------------------------------------------------------------------
    -- Same content: the same version
    ----------------------------------------------------------------------------
    IF v_LastHash = p_ContentHash THEN
        p_VersionNumber := v_LastVersion;
        p_DocumentId := v_LastDocumentId;
        p_CreatedUtc := v_LastCreatedUtc;
        SELECT dv.DocumentId INTO p_PreviousDocumentId
        FROM PLSP.CdaDocumentVersion AS dv
        WHERE dv.ForloebsplanId = p_ForloebsplanId AND dv.VersionNumber = v_LastVersion - 1;
        p_Created := 'N';
        RETURN;
    END IF;

    ----------------------------------------------------------------------------
    -- Changed content (or none yet): the next version
    ----------------------------------------------------------------------------
    p_VersionNumber := CASE WHEN v_LastVersion IS NULL THEN v_PlanVersion ELSE v_LastVersion + 1 END;
    p_DocumentId := gen_random_uuid();
    p_CreatedUtc := v_NowUtc;
    p_PreviousDocumentId := v_LastDocumentId;
    INSERT INTO PLSP.CdaDocumentVersion (ForloebsplanId, VersionNumber, DocumentId, ContentHash, CreatedUtc)
    VALUES (p_ForloebsplanId, p_VersionNumber, p_DocumentId, p_ContentHash, p_CreatedUtc);
    UPDATE PLSP.Forloebsplan SET VersionNumber = p_VersionNumber
    WHERE ForloebsplanId = p_ForloebsplanId AND VersionNumber <> p_VersionNumber;
    p_Created := 'Y';
END;
$$;
