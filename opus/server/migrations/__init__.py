"""Alembic migrations of the OPUS database, run by opus.server.schema (`opus db upgrade`)."""
