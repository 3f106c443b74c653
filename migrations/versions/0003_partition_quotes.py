"""quotes partitioned by UTC day; daily bars kept forever

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Minute quotes live in one partition per UTC day (``quotes_YYYYMMDD``) so that
retention drops whole partitions instead of deleting rows; a DEFAULT
partition catches any row whose day has no partition yet, so an insert never
fails.  ``daily_bars`` keeps one OHLCV row per ticker and New York session
date, forever.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = "ticker, time, price, volume, prev_close, open, high, low, sma, source"


def upgrade() -> None:
    op.execute("ALTER TABLE quotes RENAME TO quotes_unpartitioned")
    op.execute("ALTER TABLE quotes_unpartitioned RENAME CONSTRAINT quotes_pkey TO quotes_unpartitioned_pkey")
    op.execute("ALTER TABLE quotes_unpartitioned RENAME CONSTRAINT quotes_price_positive "
               "TO quotes_unpartitioned_price_positive")
    op.execute("""
        CREATE TABLE quotes (
            ticker varchar(10) NOT NULL,
            time timestamptz NOT NULL,
            price numeric(18, 4) NOT NULL,
            volume bigint,
            prev_close numeric(18, 4),
            open numeric(18, 4),
            high numeric(18, 4),
            low numeric(18, 4),
            sma numeric(18, 4),
            source varchar(16) NOT NULL,
            CONSTRAINT quotes_pkey PRIMARY KEY (ticker, time),
            CONSTRAINT quotes_price_positive CHECK (price > 0)
        ) PARTITION BY RANGE (time)
    """)
    op.execute("CREATE TABLE quotes_default PARTITION OF quotes DEFAULT")
    # one partition per day already stored, then move the rows
    op.execute("""
        DO $$
        DECLARE d date;
        BEGIN
          FOR d IN SELECT DISTINCT (time AT TIME ZONE 'UTC')::date FROM quotes_unpartitioned LOOP
            EXECUTE format(
              'CREATE TABLE %I PARTITION OF quotes FOR VALUES FROM (%L) TO (%L)',
              'quotes_' || to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE 'UTC',
              (d + 1)::timestamp AT TIME ZONE 'UTC');
          END LOOP;
        END $$
    """)
    op.execute(f"INSERT INTO quotes ({COLUMNS}) SELECT {COLUMNS} FROM quotes_unpartitioned")
    op.execute("DROP TABLE quotes_unpartitioned")
    op.create_table(
        "daily_bars",
        sa.Column("ticker", sa.String(length=10), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("open", sa.Numeric(18, 4), nullable=False),
        sa.Column("high", sa.Numeric(18, 4), nullable=False),
        sa.Column("low", sa.Numeric(18, 4), nullable=False),
        sa.Column("close", sa.Numeric(18, 4), nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("quotes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("ticker", "day"),
    )


def downgrade() -> None:
    op.drop_table("daily_bars")
    op.execute("ALTER TABLE quotes RENAME TO quotes_partitioned")
    op.execute("ALTER TABLE quotes_partitioned RENAME CONSTRAINT quotes_pkey TO quotes_partitioned_pkey")
    op.execute(f"""
        CREATE TABLE quotes (
            ticker varchar(10) NOT NULL, time timestamptz NOT NULL, price numeric(18, 4) NOT NULL,
            volume bigint, prev_close numeric(18, 4), open numeric(18, 4), high numeric(18, 4),
            low numeric(18, 4), sma numeric(18, 4), source varchar(16) NOT NULL,
            CONSTRAINT quotes_pkey PRIMARY KEY (ticker, time),
            CONSTRAINT quotes_price_positive2 CHECK (price > 0));
        INSERT INTO quotes ({COLUMNS}) SELECT {COLUMNS} FROM quotes_partitioned;
        DROP TABLE quotes_partitioned CASCADE
    """)
