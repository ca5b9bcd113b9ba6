"""Alembic migrations of the results database (run with ``lenscast migrate --db URL``)."""
