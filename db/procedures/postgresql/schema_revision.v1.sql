-- Monitor.schema_revision, version 1.
-- The migration revision applied to this database (Alembic's version_num), so
-- the orchestrator and flp status can compare it with the code's without
-- reading public.alembic_version themselves. NULL when no revision row exists.
CREATE PROCEDURE Monitor.schema_revision(
    INOUT p_Revision varchar(32) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF to_regclass('public.alembic_version') IS NULL THEN
        v_Errors := v_Errors || 'Monitor.schema_revision needs the table public.alembic_version: the database was not migrated with flp db upgrade. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Check parameters: p_Revision is an output only; a value passed in is ignored.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Read the revision (one row: the project has a single line of migrations)
    ----------------------------------------------------------------------------
    SELECT max(v.version_num) INTO p_Revision
    FROM public.alembic_version AS v;
END;
$$;
