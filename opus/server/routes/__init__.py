"""Thin HTTP layer: parse and validate input, check permission, call the JobService."""
