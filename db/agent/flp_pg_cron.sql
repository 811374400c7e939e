-- FLP fallback jobs for pg_cron, generated from the job registry by
-- `flp db agent-script --engine postgresql --database flp`.
-- Run with psql in the database pg_cron is installed in (cron.database_name),
-- as a superuser or the FLP database's owner:
--   psql -d postgres -v ON_ERROR_STOP=1 -f flp_pg_cron.sql
-- Each job runs in database flp: it calls Job.fallback_due, which lets it
-- through only when no orchestrator heartbeat is younger than the setting
-- FallbackAfterSeconds (Ops.Setting, default 300) and the slot is not taken;
-- the run is then an ordinary Ops.JobRun row (TriggeredBy pg_cron, Host the
-- database server: its cluster_name setting, else its address, else localhost).
-- A job whose setting Enabled is 'N' is not run.
-- Re-runnable: a job is scheduled only where missing, altered only where its
-- schedule, command or database differ, and flp_ jobs no longer in the
-- registry are unscheduled. Running it twice changes nothing the second time.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pg_cron;

DO $script$
DECLARE
    v_Database text := 'flp';
    r record;
BEGIN
    FOR r IN
        SELECT w.jobname, w.schedule, w.command, j.jobid, j.schedule AS old_schedule,
            j.command AS old_command, j.database AS old_database
        FROM (VALUES
        ('flp_archive_aim', '0 * * * *', 'DO $flp$ DECLARE v_Host varchar(128) := coalesce(nullif(current_setting(''cluster_name''), ''''), host(inet_server_addr()), ''localhost''); v_Due char(1); v_Reason varchar(40); v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN CALL job.fallback_due(p_JobName => ''archive_aim'', p_EverySeconds => NULL, p_DailyAt => ''00:00'', p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, p_TriggeredBy => ''pg_cron''); IF v_Due = ''Y'' THEN COMMIT; CALL job.archive_aim(p_Execute => ''Y'', p_TimeLimitSeconds => NULL, p_TriggeredBy => ''pg_cron'', p_Host => v_Host, p_JobRunId => v_JobRunId, p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;'),
        ('flp_session_purge', '*/10 * * * *', 'DO $flp$ DECLARE v_Host varchar(128) := coalesce(nullif(current_setting(''cluster_name''), ''''), host(inet_server_addr()), ''localhost''); v_Due char(1); v_Reason varchar(40); v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN CALL job.fallback_due(p_JobName => ''session_purge'', p_EverySeconds => 600, p_DailyAt => NULL, p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, p_TriggeredBy => ''pg_cron''); IF v_Due = ''Y'' THEN COMMIT; CALL job.session_purge(p_Execute => ''Y'', p_TimeLimitSeconds => NULL, p_TriggeredBy => ''pg_cron'', p_Host => v_Host, p_JobRunId => v_JobRunId, p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;'),
        ('flp_log_cleanup', '0 * * * *', 'DO $flp$ DECLARE v_Host varchar(128) := coalesce(nullif(current_setting(''cluster_name''), ''''), host(inet_server_addr()), ''localhost''); v_Due char(1); v_Reason varchar(40); v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN CALL job.fallback_due(p_JobName => ''log_cleanup'', p_EverySeconds => NULL, p_DailyAt => ''01:00'', p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, p_TriggeredBy => ''pg_cron''); IF v_Due = ''Y'' THEN COMMIT; CALL job.log_cleanup(p_Execute => ''Y'', p_TimeLimitSeconds => NULL, p_TriggeredBy => ''pg_cron'', p_Host => v_Host, p_JobRunId => v_JobRunId, p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;'),
        ('flp_convert_values', '*/5 * * * *', 'DO $flp$ DECLARE v_Host varchar(128) := coalesce(nullif(current_setting(''cluster_name''), ''''), host(inet_server_addr()), ''localhost''); v_Due char(1); v_Reason varchar(40); v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN CALL job.fallback_due(p_JobName => ''convert_values'', p_EverySeconds => 300, p_DailyAt => NULL, p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, p_TriggeredBy => ''pg_cron''); IF v_Due = ''Y'' THEN COMMIT; CALL job.convert_values(p_Execute => ''Y'', p_TimeLimitSeconds => NULL, p_TriggeredBy => ''pg_cron'', p_Host => v_Host, p_JobRunId => v_JobRunId, p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;'),
        ('flp_convert_invalid_values', '0 * * * *', 'DO $flp$ DECLARE v_Host varchar(128) := coalesce(nullif(current_setting(''cluster_name''), ''''), host(inet_server_addr()), ''localhost''); v_Due char(1); v_Reason varchar(40); v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN CALL job.fallback_due(p_JobName => ''convert_invalid_values'', p_EverySeconds => NULL, p_DailyAt => ''03:00'', p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, p_TriggeredBy => ''pg_cron''); IF v_Due = ''Y'' THEN COMMIT; CALL job.convert_invalid_values(p_Execute => ''Y'', p_TimeLimitSeconds => NULL, p_TriggeredBy => ''pg_cron'', p_Host => v_Host, p_JobRunId => v_JobRunId, p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;'),
        ('flp_check_inclusion', '* * * * *', 'DO $flp$ DECLARE v_Host varchar(128) := coalesce(nullif(current_setting(''cluster_name''), ''''), host(inet_server_addr()), ''localhost''); v_Due char(1); v_Reason varchar(40); v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN CALL job.fallback_due(p_JobName => ''check_inclusion'', p_EverySeconds => 60, p_DailyAt => NULL, p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, p_TriggeredBy => ''pg_cron''); IF v_Due = ''Y'' THEN COMMIT; CALL job.check_inclusion(p_Execute => ''Y'', p_TimeLimitSeconds => NULL, p_TriggeredBy => ''pg_cron'', p_Host => v_Host, p_JobRunId => v_JobRunId, p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;'),
        ('flp_ops_retention', '30 * * * *', 'DO $flp$ DECLARE v_Host varchar(128) := coalesce(nullif(current_setting(''cluster_name''), ''''), host(inet_server_addr()), ''localhost''); v_Due char(1); v_Reason varchar(40); v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN CALL job.fallback_due(p_JobName => ''ops_retention'', p_EverySeconds => NULL, p_DailyAt => ''02:30'', p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, p_TriggeredBy => ''pg_cron''); IF v_Due = ''Y'' THEN COMMIT; CALL job.ops_retention(p_Execute => ''Y'', p_TimeLimitSeconds => NULL, p_TriggeredBy => ''pg_cron'', p_Host => v_Host, p_JobRunId => v_JobRunId, p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;'),
        ('flp_upload_drain', '* * * * *', 'DO $flp$ DECLARE v_Host varchar(128) := coalesce(nullif(current_setting(''cluster_name''), ''''), host(inet_server_addr()), ''localhost''); v_Due char(1); v_Reason varchar(40); v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN CALL job.fallback_due(p_JobName => ''upload_drain'', p_EverySeconds => 60, p_DailyAt => NULL, p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, p_TriggeredBy => ''pg_cron''); IF v_Due = ''Y'' THEN COMMIT; CALL job.upload_drain(p_Execute => ''Y'', p_TimeLimitSeconds => NULL, p_TriggeredBy => ''pg_cron'', p_Host => v_Host, p_JobRunId => v_JobRunId, p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;')
        ) AS w (jobname, schedule, command)
        LEFT JOIN cron.job AS j ON j.jobname = w.jobname
    LOOP
        IF r.jobid IS NULL THEN
            PERFORM cron.schedule_in_database(r.jobname, r.schedule, r.command, v_Database);
            RAISE NOTICE 'scheduled %', r.jobname;
        ELSIF r.old_schedule <> r.schedule OR r.old_command <> r.command OR r.old_database <> v_Database THEN
            PERFORM cron.alter_job(r.jobid, r.schedule, r.command, v_Database);
            RAISE NOTICE 'updated %', r.jobname;
        END IF;
    END LOOP;
    FOR r IN
        SELECT j.jobid, j.jobname FROM cron.job AS j
        WHERE j.jobname LIKE 'flp\_%' AND j.jobname NOT IN ('flp_archive_aim', 'flp_session_purge', 'flp_log_cleanup', 'flp_convert_values', 'flp_convert_invalid_values', 'flp_check_inclusion', 'flp_ops_retention', 'flp_upload_drain')
    LOOP
        PERFORM cron.unschedule(r.jobid);
        RAISE NOTICE 'unscheduled %', r.jobname;
    END LOOP;
END
$script$;
