-- Job.heartbeat_beat, version 2.
-- Records that an orchestrator process is alive: one row per component in
-- Ops.Heartbeat, its BeatUtc moved forward on every call. Operators (and the
-- database's fallback scheduler) read it to see whether an orchestrator runs.
-- Version 2: an over-long component or host is refused naming the parameter
-- on both engines (each parameter is one character wider than its column, so
-- T-SQL no longer cuts it silently and PostgreSQL no longer fails at the write).
CREATE OR ALTER PROCEDURE Job.heartbeat_beat
    @Component varchar(201),
    @Host nvarchar(129),
    @ProcessId int
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @Component IS NULL OR LTRIM(RTRIM(@Component)) = '' OR LEN(@Component) > 200
        SET @Errors += N'The value for the parameter @Component is not supported: name the process, at most 200 characters. ';
    IF @Host IS NULL OR LTRIM(RTRIM(@Host)) = '' OR LEN(@Host) > 128
        SET @Errors += N'The value for the parameter @Host is not supported: give the host name, at most 128 characters. ';
    IF @ProcessId IS NULL OR @ProcessId <= 0
        SET @Errors += N'The value for the parameter @ProcessId is not supported: give the process id. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Upsert: UPDATE under UPDLOCK, HOLDLOCK, then INSERT if absent (no MERGE)
    ----------------------------------------------------------------------------
    BEGIN TRANSACTION;
    UPDATE Ops.Heartbeat WITH (UPDLOCK, HOLDLOCK)
    SET Host = @Host,
        ProcessId = @ProcessId,
        BeatUtc = SYSUTCDATETIME()
    WHERE Component = @Component;

    IF @@ROWCOUNT = 0
        INSERT INTO Ops.Heartbeat (Component, Host, ProcessId, StartedUtc, BeatUtc)
        VALUES (@Component, @Host, @ProcessId, SYSUTCDATETIME(), SYSUTCDATETIME());
    COMMIT TRANSACTION;
END;
