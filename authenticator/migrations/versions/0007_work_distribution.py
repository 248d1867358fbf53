"""work distribution: items, claims, and the project settings overlap, lease_minutes, blind

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from jupyterhub_annotations.authenticator.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("overlap", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("lease_minutes", sa.Integer, nullable=False, server_default="30")
        )
        batch.add_column(
            sa.Column("blind", sa.Boolean, nullable=False, server_default=sa.text("false"))
        )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("item", sa.String(256), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("project_id", "item", name="uq_items_key"),
    )
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("item", sa.String(256), nullable=False),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("claimed_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("item_id", "account_id", name="uq_claims_item_account"),
    )
    op.create_index("ix_claims_project_state", "claims", ["project_id", "state", "expires_at"])
    op.create_index("ix_claims_account", "claims", ["account_id", "project_id", "state"])


def downgrade() -> None:
    op.drop_table("claims")
    op.drop_table("items")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("blind")
        batch.drop_column("lease_minutes")
        batch.drop_column("overlap")
