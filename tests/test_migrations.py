"""Schema migrations: an old database is upgraded in place, and the migrations build
exactly the tables the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from jupyterhub_annotations.authenticator import passwords
from jupyterhub_annotations.authenticator.models import Base
from jupyterhub_annotations.authenticator.store import Store, alembic_config

PASSWORD = "an old passphrase 1"


def test_a_database_of_the_first_version_is_upgraded_with_its_accounts_kept(empty_db_url):
    store = Store(empty_db_url)
    try:
        command.upgrade(alembic_config(store.engine), "0001")  # as the first release left it
        with store.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO accounts (name, kind, password_hash, admin, active,"
                    " credential_version, created_at) VALUES ('olga', 'user', :hash,"
                    " true, true, 0, :now)"
                ),
                {"hash": passwords.hash_password(PASSWORD), "now": datetime.now(UTC)},
            )
        store.migrate()
        assert set(sa.inspect(store.engine).get_table_names()) >= set(Base.metadata.tables)
        with store.reading() as conn:
            row = conn.execute(sa.text("SELECT name, password_hash FROM accounts")).one()
        assert row.name == "olga"
        assert passwords.verify_password(row.password_hash, PASSWORD)
    finally:
        store.dispose()


def test_the_migrations_build_exactly_the_models(empty_db_url):
    store = Store(empty_db_url)
    try:
        store.migrate()
        with store.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        store.dispose()
    assert differences == [], "models.py and the migrations disagree: add a migration"
