"""Alembic environment shared by all services; the caller passes connection and metadata."""

from alembic import context

from shared.migrations import only_declared_tables

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=config.attributes["target_metadata"],
    compare_type=True,
    include_object=only_declared_tables,
    # SQLite cannot ALTER most things: batch mode rebuilds tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
