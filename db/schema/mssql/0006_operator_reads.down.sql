-- Undo 0006_operator_reads on SQL Server: the role, then the schema. The
-- Monitor procedures are dropped by the migration before this runs.
-- A DBA adds users to the role (docs/operations.md), and DROP ROLE fails with
-- error 15144 while a role has members, so every member is dropped first.
DECLARE @DropMembers nvarchar(MAX) = N'';
SELECT @DropMembers += N'ALTER ROLE ' + QUOTENAME(r.name) + N' DROP MEMBER ' + QUOTENAME(m.name) + N'; '
FROM sys.database_role_members AS rm
INNER JOIN sys.database_principals AS r ON rm.role_principal_id = r.principal_id
INNER JOIN sys.database_principals AS m ON rm.member_principal_id = m.principal_id
WHERE r.name = N'flp_operator';
EXEC sys.sp_executesql @DropMembers;
GO
REVOKE EXECUTE ON SCHEMA::Monitor FROM flp_operator;
REVOKE EXECUTE ON SCHEMA::Monitor FROM flp_orchestrator;
GO
DROP ROLE flp_operator;
GO
DROP SCHEMA Monitor;
GO
