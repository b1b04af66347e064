"""Fixtures of a throwaway PostgreSQL server started by the tests (to be written)."""
