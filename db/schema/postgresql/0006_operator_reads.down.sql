-- Undo 0006_operator_reads on PostgreSQL. The Monitor routines are dropped by
-- the migration first. The role flp_operator is cluster-wide and may hold
-- rights in other databases of the cluster, so it stays (as in 0001); a DBA
-- drops it by hand.
DROP SCHEMA Monitor CASCADE;
