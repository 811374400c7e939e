-- Api.cda_access_log, version 1.
-- One row of PLSP.CdaAccessLog per request for a care-plan document or its
-- values (the service writes it after answering): who asked (citizen, or the
-- DDS organisation), why, the patient as a keyed hash (never a CPR number),
-- the care plan and document version served, the HTTP status and the latency.
-- Twin differences: none beyond the dialects.
CREATE PROCEDURE Api.cda_access_log(
    p_RequesterKind varchar(10),
    p_Requester varchar(100),
    p_Purpose varchar(40),
    p_HttpStatus smallint,
    p_LatencyMs integer,
    p_PatientHash char(64) DEFAULT NULL,
    p_ForloebCode varchar(10) DEFAULT NULL,
    p_VersionNumber integer DEFAULT NULL,
    p_AccessedUtc timestamp(3) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_RequesterKind IS NULL OR p_RequesterKind NOT IN ('citizen', 'dds') THEN
        v_Errors := v_Errors || 'The value for the parameter p_RequesterKind is not supported: use citizen or dds. ';
    END IF;
    IF p_Requester IS NULL OR p_Requester = '' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Requester is not supported: name the requester (up to 100 characters). ';
    END IF;
    IF p_Purpose IS NULL OR p_Purpose !~ '^[a-z][a-z0-9-]*$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Purpose is not supported: give a purpose word (lower-case letters, digits, -). ';
    END IF;
    IF p_HttpStatus IS NULL OR p_HttpStatus < 100 OR p_HttpStatus > 599 THEN
        v_Errors := v_Errors || 'The value for the parameter p_HttpStatus is not supported: give an HTTP status from 100 to 599. ';
    END IF;
    IF p_LatencyMs IS NULL OR p_LatencyMs < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_LatencyMs is not supported: give whole milliseconds, 0 or more. ';
    END IF;
    IF p_PatientHash IS NOT NULL AND p_PatientHash !~ '^[0-9a-f]{64}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_PatientHash is not supported: give the keyed hash as 64 lower-case hex digits, or NULL. ';
    END IF;
    IF p_ForloebCode IS NOT NULL AND p_ForloebCode !~ '^[A-Z0-9]{1,10}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_ForloebCode is not supported: give a care-plan code such as ALAL22, or NULL. ';
    END IF;
    IF p_VersionNumber IS NOT NULL AND p_VersionNumber < 1 THEN
        v_Errors := v_Errors || 'The value for the parameter p_VersionNumber is not supported: give 1 or more, or NULL. ';
    END IF;
    IF p_AccessedUtc IS NOT NULL AND (p_AccessedUtc < '2000-01-01' OR p_AccessedUtc >= '2100-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_AccessedUtc is not supported: give a UTC time from 2000 to 2099, or NULL for now. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Log
    ----------------------------------------------------------------------------
    INSERT INTO PLSP.CdaAccessLog (
        AccessedUtc, RequesterKind, Requester, Purpose, PatientHash, ForloebCode, VersionNumber, HttpStatus, LatencyMs
    )
    VALUES (
        coalesce(p_AccessedUtc, (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3)),
        p_RequesterKind, p_Requester, p_Purpose, p_PatientHash, p_ForloebCode, p_VersionNumber, p_HttpStatus, p_LatencyMs
    );
END;
$$;
