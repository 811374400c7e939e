-- Job.startup_check, version 1.
-- Start-up checks in the manner of Ola Hallengren's: what the FLP procedures
-- need from the server and the database, checked once when an orchestrator
-- starts (orchestrator.db.startup) or by a DBA before the first deploy. Each
-- check is one line of p_Report, '<status> <check>: <detail>', status ok,
-- FAILED or info; p_Failed counts the FAILED lines. With p_RaiseOnFailure = 'Y'
-- (the default, for a person in psql) any failed check raises one error that
-- lists every failed line, each naming its check. It reads the catalog only.
--   EngineVersion        PostgreSQL 14 or later (client_connection_check_interval,
--                        procedures with COMMIT in loops).
--   EngineEdition        PostgreSQL has one edition: reported.
--   DatabaseEncoding     UTF8 (Danish names, the LPS' text).
--   SetOptions           standard_conforming_strings on (backslashes in string
--                        literals are literal, as the procedures assume).
--   ProcedureSetOptions  every SECURITY DEFINER routine in the FLP schemas fixes
--                        its search_path (otherwise a caller's objects could
--                        stand in for pg_catalog's).
--   ReadCommittedSnapshot  info only: PostgreSQL always reads row versions
--                        (MVCC); the default transaction isolation is reported.
--   DatabaseOwner        the role owning the database, reported.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * DatabaseEncoding here in place of CompatibilityLevel (PostgreSQL has no compatibility level).
--   * SetOptions here is standard_conforming_strings; T-SQL checks the SESSIONPROPERTY options filtered indexes need.
--   * ProcedureSetOptions here checks search_path on SECURITY DEFINER routines; T-SQL checks ANSI_NULLS / QUOTED_IDENTIFIER of the modules.
--   * DatabaseOwner is reported, never failed: roles are cluster-wide and SECURITY DEFINER needs no login (T-SQL: EXECUTE AS OWNER needs one).
--   * Plain procedure with a fixed search_path, not SECURITY DEFINER: it reads the catalog only, which every role may read.
CREATE PROCEDURE Job.startup_check(
    p_RaiseOnFailure char(1) DEFAULT 'Y',
    INOUT p_Failed integer DEFAULT NULL,
    INOUT p_Report text DEFAULT NULL
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Lines text[] := ARRAY[]::text[];
    v_FailedLines text[] := ARRAY[]::text[];
    v_Status text;
    v_Detail text;
    v_VersionNum integer := current_setting('server_version_num')::integer;
    v_Version text := current_setting('server_version');
    v_Encoding text;
    v_Owner text;
    v_WrongRoutines text;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (catalog reads only, inside or outside a transaction)
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_RaiseOnFailure IS NULL OR p_RaiseOnFailure NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_RaiseOnFailure is not supported: use Y (raise an error when a check fails) or N (report only). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Log start: nothing is logged (a read-only check, run at every start)
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    -- EngineVersion
    v_Status := CASE WHEN v_VersionNum >= 140000 THEN 'ok' ELSE 'FAILED' END;
    v_Detail := concat('PostgreSQL ', v_Version, CASE WHEN v_VersionNum < 140000 THEN ': PostgreSQL 14 or later is needed' END);
    v_Lines := v_Lines || concat(v_Status, ' EngineVersion: ', v_Detail);

    -- EngineEdition
    v_Lines := v_Lines || 'ok EngineEdition: PostgreSQL (one edition)'::text;

    -- DatabaseEncoding
    SELECT pg_encoding_to_char(d.encoding), r.rolname INTO v_Encoding, v_Owner
    FROM pg_database AS d
    INNER JOIN pg_roles AS r ON d.datdba = r.oid
    WHERE d.datname = current_database();
    v_Status := CASE WHEN v_Encoding = 'UTF8' THEN 'ok' ELSE 'FAILED' END;
    v_Detail := concat(
        'database ', quote_ident(current_database()), ' is encoded ', v_Encoding,
        CASE WHEN v_Encoding <> 'UTF8' THEN ': create it with ENCODING ''UTF8''' END
    );
    v_Lines := v_Lines || concat(v_Status, ' DatabaseEncoding: ', v_Detail);

    -- SetOptions
    v_Status := CASE WHEN current_setting('standard_conforming_strings') = 'on' THEN 'ok' ELSE 'FAILED' END;
    v_Detail := CASE
        WHEN v_Status = 'ok' THEN 'standard_conforming_strings is on'
        ELSE 'standard_conforming_strings is off: set it on (the default since PostgreSQL 9.1)'
    END;
    v_Lines := v_Lines || concat(v_Status, ' SetOptions: ', v_Detail);

    -- ProcedureSetOptions
    SELECT left(string_agg(concat(n.nspname, '.', p.proname), ', ' ORDER BY n.nspname, p.proname), 500) INTO v_WrongRoutines
    FROM pg_proc AS p
    INNER JOIN pg_namespace AS n ON p.pronamespace = n.oid
    WHERE
        n.nspname IN ('job', 'api', 'upload', 'monitor')
        AND p.prosecdef
        AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c (setting) WHERE c.setting LIKE 'search\_path=%');
    v_Status := CASE WHEN v_WrongRoutines IS NULL THEN 'ok' ELSE 'FAILED' END;
    v_Detail := CASE
        WHEN v_WrongRoutines IS NULL THEN 'every SECURITY DEFINER routine fixes its search_path'
        ELSE concat('SECURITY DEFINER without a fixed search_path: ', v_WrongRoutines, '; apply the migrations again')
    END;
    v_Lines := v_Lines || concat(v_Status, ' ProcedureSetOptions: ', v_Detail);

    -- ReadCommittedSnapshot (reported, never failed)
    v_Lines := v_Lines || concat(
        'info ReadCommittedSnapshot: PostgreSQL reads row versions (MVCC); default_transaction_isolation is ',
        current_setting('default_transaction_isolation')
    );

    -- DatabaseOwner (reported, never failed)
    v_Lines := v_Lines || concat('ok DatabaseOwner: owned by role ', quote_ident(v_Owner));

    ----------------------------------------------------------------------------
    -- Log end: the report, one line per check in order, and the failed ones
    ----------------------------------------------------------------------------
    SELECT array_agg(substr(l.line, 8) ORDER BY l.n) INTO v_FailedLines
    FROM unnest(v_Lines) WITH ORDINALITY AS l (line, n)
    WHERE l.line LIKE 'FAILED %';
    p_Failed := coalesce(cardinality(v_FailedLines), 0);
    p_Report := array_to_string(v_Lines, E'\n');

    IF p_Failed > 0 AND p_RaiseOnFailure = 'Y' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL002', MESSAGE = left(concat(
            'Job.startup_check: ', p_Failed, ' check(s) failed: ', array_to_string(v_FailedLines, ' | ')
        ), 2048);
    END IF;
END;
$$;
