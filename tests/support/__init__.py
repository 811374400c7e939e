"""Test support: fixtures' helpers, SQL helpers and the SQL quality gates."""
