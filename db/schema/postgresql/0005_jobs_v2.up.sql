-- Migration 0005 on PostgreSQL: the index the archive's keyset pick scans.
--
-- Job.archive_aim_batch picks the next p_BatchSize rows with
--   WHERE a.Id > v_FromId AND a.Status = 2 AND a.DeliveredUtc < v_CutoffUtc ORDER BY a.Id LIMIT n
-- On the primary key alone Status = 2 is a filter: every pending and queued
-- row (and every dead tuple the earlier batches left) after v_FromId is read
-- and thrown away. This partial index holds the delivered rows only, in Id
-- order, with DeliveredUtc included: an index (only) scan from v_FromId that
-- stops after n rows. tests/test_batch_bodies_v2.py shows the plan.
CREATE INDEX IX_FLP_AIM_Delivered ON PLSP.FLP_AIM (Id) INCLUDE (DeliveredUtc) WHERE Status = 2;
