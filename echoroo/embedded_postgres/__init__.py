"""Django database backend for the embedded PostgreSQL server: PostgreSQL, started on demand."""
