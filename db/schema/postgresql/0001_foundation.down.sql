-- Undo 0001_foundation on PostgreSQL. The roles are cluster-wide and may hold
-- rights in other databases of the cluster, so they stay; a DBA drops them by hand.
DROP SCHEMA Upload CASCADE;
DROP SCHEMA Api CASCADE;
DROP SCHEMA Job CASCADE;
DROP SCHEMA Ops CASCADE;
DROP SCHEMA PLSP CASCADE;
