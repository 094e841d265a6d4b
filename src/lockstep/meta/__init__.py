"""Run metadata in SQL through SQLAlchemy Core: SQLite by default, PostgreSQL for teams."""
