"""Alembic environment: runs on the engine the Store hands over."""

from alembic import context
from jupyterhub_annotations.authenticator.models import Base

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table.
        render_as_batch=engine.dialect.name == "sqlite",
    )
    context.run_migrations()
