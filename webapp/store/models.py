"""Cold data in Postgres: tracked symbols, validated quotes, fired alerts.

Quotes are unique per (ticker, provider time) and alerts per (ticker, time),
which is what makes a retried tick add nothing.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db

PRICE = sa.Numeric(18, 4)


class Symbol(db.Model):
    __tablename__ = "symbols"

    ticker: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    added_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )


class Quote(db.Model):
    __tablename__ = "quotes"
    __table_args__ = (sa.CheckConstraint("price > 0", name="quotes_price_positive"),)

    ticker: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), primary_key=True)
    price: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    volume: Mapped[int | None] = mapped_column(sa.BigInteger)
    prev_close: Mapped[Decimal | None] = mapped_column(PRICE)
    open: Mapped[Decimal | None] = mapped_column(PRICE)  # the session's, as reported
    high: Mapped[Decimal | None] = mapped_column(PRICE)
    low: Mapped[Decimal | None] = mapped_column(PRICE)
    sma: Mapped[Decimal | None] = mapped_column(PRICE)
    source: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    bar_open: Mapped[Decimal | None] = mapped_column(PRICE)  # the minute's own bar, where known
    bar_high: Mapped[Decimal | None] = mapped_column(PRICE)
    bar_low: Mapped[Decimal | None] = mapped_column(PRICE)


class Alert(db.Model):
    __tablename__ = "alerts"
    __table_args__ = (
        sa.UniqueConstraint("ticker", "time", name="alerts_ticker_time_key"),
        sa.CheckConstraint("kind IN ('bullish', 'bearish')", name="alerts_kind_valid"),
        sa.Index("alerts_time_idx", sa.text("time DESC")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    ticker: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    price: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    sma: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )


class DailyBar(db.Model):
    """One OHLCV bar per ticker and New York session date, kept forever."""

    __tablename__ = "daily_bars"

    ticker: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    open: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    high: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    low: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    close: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    volume: Mapped[int | None] = mapped_column(sa.BigInteger)
    quotes: Mapped[int] = mapped_column(sa.Integer, nullable=False)


class MissedSlots(db.Model):
    """A run of consecutive tick slots that got no data, and why (never silently skipped)."""

    __tablename__ = "missed_slots"

    start: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), primary_key=True)
    end: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, index=True)
    slots: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    reason: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class EmittedSlots(db.Model):
    """How far each shard's emits have gone: the repair of a slot missing from Redis sends only what
    never went out (migration 0011)."""

    __tablename__ = "emitted_slots"

    shard: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    shards: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    slot: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
