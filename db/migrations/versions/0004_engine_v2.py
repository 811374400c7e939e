"""The batch engine, version 2 (issue 7): run_batched, health_check, the job-run procedures, the wrappers.

Revision ID: 0004
Revises: 0003
"""

from orchestrator.db.migration_ops import downgrade_procedures, engine, execute, upgrade_procedures

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("batch_settings_get", 2),
    ("health_check", 2),
    ("job_run_start", 2),
    ("job_run_finish", 2),
    ("job_run_fail", 2),
    ("job_batch_log", 2),
    ("heartbeat_beat", 2),
    ("run_batched", 2),
    ("archive_aim", 2),
    ("session_purge", 2),
    ("log_cleanup", 2),
]

# The engine's new settings ('*' rows, every batched job), read by
# Job.batch_settings_get v2 before every batch:
#   LockTimeoutMs      the longest a batch waits for any lock (SET LOCK_TIMEOUT /
#                      lock_timeout, set by Job.run_batched before each batch and
#                      inherited by the batch procedure); a batch that hits it is
#                      rolled back and its rows are left for the next batch.
#   DeadlockRetries    how often a batch chosen as deadlock victim is retried in
#                      a row before the run stops cleanly (stopped).
#   TimeEfficiencyMin  the least share of the engine's working time a batch
#                      should spend moving rows: batches grow past BatchTargetMs
#                      while the fixed cost around each batch is larger (0: off).
#   BatchMaxMs         the longest a batch may take (its transaction), whatever
#                      the efficiency asks for.
# archive_aim keeps the 100 ms lock wait its batch had built in (version 1).
#
# LockWaitMs (log_cleanup) has one meaning on both engines from here on: the
# longest wait, in milliseconds, for the lock of a month's SWITCH / TRUNCATE
# (and of a partition split), asked without queueing so nobody waits behind it.
# It is not a general lock timeout: that is LockTimeoutMs.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('*', 'LockTimeoutMs', '1000',
        'longest wait for a lock in a batch, milliseconds; then the batch is rolled back, left for the next'),
    ('*', 'DeadlockRetries', '3',
        'retries of a batch chosen as deadlock victim, in a row, before the run stops'),
    ('*', 'TimeEfficiencyMin', '0.8',
        'least share of the working time spent in batches: batches grow while overhead is larger (0 = off)'),
    ('*', 'BatchMaxMs', '1000', 'longest a batch (one transaction) may take, milliseconds'),
    ('archive_aim', 'LockTimeoutMs', '100', 'short: a row the AIM fetcher holds is left for the next run');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting
WHERE (JobName = '*' AND Name IN ('LockTimeoutMs', 'DeadlockRetries', 'TimeEfficiencyMin', 'BatchMaxMs'))
    OR (JobName = 'archive_aim' AND Name = 'LockTimeoutMs');
"""
LOCK_WAIT_DESCRIPTION = """
UPDATE Ops.Setting
SET Description = '{text}'
WHERE JobName = 'log_cleanup' AND Name = 'LockWaitMs';
"""
LOCK_WAIT_V2 = (
    "longest wait for the lock of a month SWITCH or TRUNCATE (and a partition split), milliseconds, "
    "asked without queueing; both engines"
)
LOCK_WAIT_V1 = (
    "longest wait for a partition lock, milliseconds (asked without queueing: nobody waits behind it)"
)

# Module signing (SQL Server only): Job.health_check reads the server's DMVs,
# which need VIEW SERVER STATE (or VIEW SERVER PERFORMANCE STATE on 2022+).
# Granted to the orchestrator's login that would show it every database's query
# text; instead the procedure is signed with a certificate whose login in
# master holds the permission (docs/operations.md, "Before the first deploy").
# CREATE OR ALTER drops a signature, so every migration that re-creates
# health_check signs it again right after (tests/test_sql_gates.py checks).
# The certificate is kept on downgrade, as the roles are: the DBA's login in
# master is made from it.
SIGNER = "FlpHealthCheckSigner"
MSSQL_CREATE_SIGNER = f"""
IF NOT EXISTS (SELECT 1 FROM sys.certificates WHERE name = N'{SIGNER}')
BEGIN
    -- The private key is protected by the database master key (opened through
    -- the service master key): no password lives in a script. A DBA who wants
    -- to hold the master key password creates the master key first.
    IF NOT EXISTS (SELECT 1 FROM sys.symmetric_keys WHERE name = N'##MS_DatabaseMasterKey##')
    BEGIN
        DECLARE @MasterKeySql nvarchar(400) = N'CREATE MASTER KEY ENCRYPTION BY PASSWORD = '
            + QUOTENAME(CONCAT(NEWID(), N'-', NEWID(), N'-Flp#1'), N'''') + N';';
        EXEC sys.sp_executesql @MasterKeySql;
    END;
    EXEC sys.sp_executesql N'CREATE CERTIFICATE {SIGNER}
        WITH SUBJECT = ''Signs Job.health_check: VIEW SERVER STATE through its login'',
        EXPIRY_DATE = ''20991231'';';
END;
"""
MSSQL_SIGN_HEALTH_CHECK = (
    f"EXEC sys.sp_executesql N'ADD SIGNATURE TO Job.health_check BY CERTIFICATE {SIGNER};';"
)


def sign_health_check() -> None:
    if engine() == "mssql":
        execute(MSSQL_CREATE_SIGNER)
        execute(MSSQL_SIGN_HEALTH_CHECK)


def upgrade() -> None:
    execute(SETTINGS_INSERT)
    execute(LOCK_WAIT_DESCRIPTION.format(text=LOCK_WAIT_V2))
    upgrade_procedures(PROCEDURES)
    sign_health_check()  # CREATE OR ALTER above dropped any signature


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    sign_health_check()  # version 1, re-created above, is signed too
    execute(LOCK_WAIT_DESCRIPTION.format(text=LOCK_WAIT_V1))
    execute(SETTINGS_DELETE)
