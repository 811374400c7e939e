-- Migration 0012 on SQL Server (twin of db/schema/postgresql/0012_daily_report.up.sql):
-- indexes for Monitor.daily_statistics, so the nightly report reads the day's
-- rows instead of scanning the large tables.
CREATE NONCLUSTERED INDEX IX_Patientvaerdier_Converted ON PLSP.Patientvaerdier (ConvertedUtc)
    INCLUDE (ConversionStatus);
CREATE NONCLUSTERED INDEX IX_PatientInkluderet_History_Changed ON PLSP.PatientInkluderet_History (ChangedUtc)
    INCLUDE (ForloebCode, IsIncluded);
CREATE NONCLUSTERED INDEX IX_FLP_AIM_History_Delivered ON PLSP.FLP_AIM_History (DeliveredUtc)
    INCLUDE (CreatedUtc);

-- The daily report's settings (Monitor.daily_report_settings; docs/reports.md).
-- A threshold of 0 is off. WARN at or above the Warn value, FAIL at or above the Fail value.
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('daily_report', 'Recipients', 'drift@localhost', 'comma-separated addresses of the daily operations mail'),
    ('daily_report', 'Sender', 'flp@localhost', 'From address of the daily operations mail'),
    ('daily_report', 'WarnJobFailures', '1', 'failed or abandoned job runs in the day: WARN'),
    ('daily_report', 'FailJobFailures', '5', 'failed or abandoned job runs in the day: FAIL'),
    ('daily_report', 'WarnMissedRuns', '1', 'missed job slots in the day: WARN'),
    ('daily_report', 'FailMissedRuns', '0', 'missed job slots in the day: FAIL'),
    ('daily_report', 'WarnDeadLetters', '1', 'AIM messages dead-lettered in the day: WARN'),
    ('daily_report', 'FailDeadLetters', '100', 'AIM messages dead-lettered in the day: FAIL'),
    ('daily_report', 'WarnAimBacklog', '150000', 'FLP_AIM rows not delivered at the end of the day: WARN'),
    ('daily_report', 'FailAimBacklog', '600000', 'FLP_AIM rows not delivered at the end of the day: FAIL'),
    ('daily_report', 'WarnOldestPendingMinutes', '120', 'age of the oldest pending FLP_AIM row, minutes: WARN'),
    ('daily_report', 'FailOldestPendingMinutes', '720', 'age of the oldest pending FLP_AIM row, minutes: FAIL'),
    ('daily_report', 'WarnRejectedValues', '100', 'patient values given up in the day: WARN'),
    ('daily_report', 'FailRejectedValues', '0', 'patient values given up in the day: FAIL');
