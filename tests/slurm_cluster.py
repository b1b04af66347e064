"""Fixtures of a single-node SLURM cluster started by the tests (to be written)."""
