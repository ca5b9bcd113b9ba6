"""Results database: SQLAlchemy tables, Alembic migrations and queries."""
