"""CLI commands (``flask --app wsgi …``).  Thin: they call services and print."""
from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import click
from flask import Flask

from webapp.extensions import db
from webapp.services import context, ticks
from webapp.store import symbols
from webapp.tick.context import TickReport


def _parse_at(value: str | None) -> datetime | None:
    if not value:
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def init_app(app: Flask) -> None:
    @app.cli.command("fetch-once")
    @click.option("--at", help="ISO time of the tick to run (default: now, UTC)")
    @click.option("--json", "as_json", is_flag=True, help="print the full report as JSON")
    def fetch_once(at: str | None, as_json: bool) -> None:
        """Run one tick now and print what it did."""
        report = ticks.run_tick_now(_parse_at(at))
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=2))
            return
        r = report
        click.echo(f"tick {r.at.isoformat()} (slot {r.slot}), market {r.market}, "
                   f"provider {context.tick_services().provider.name}")
        if r.skipped:
            click.echo(f"  skipped fetching: {r.skipped}")
        click.echo(f"  symbols {r.symbols}, fetched {r.fetched}, accepted {r.accepted}, "
                   f"rebuilt from Postgres {r.restored}")
        for ticker, reason in r.stale.items():
            click.echo(f"  stale {ticker}: {reason}")
        for a in r.alerts:
            click.echo(f"  ALERT {a['ticker']} {a['kind']} price {a['price']} sma {a['sma']}")
        click.echo(f"  emitted {r.emitted} Socket.IO messages in {r.duration_ms:.1f} ms")

    @app.cli.command("replay")
    @click.argument("path", type=click.Path(dir_okay=False))
    @click.option("--speed", type=click.FloatRange(min=0), default=60.0, show_default=True,
                  help="recorded minutes per real minute (0: as fast as possible)")
    def replay(path: str, speed: float) -> None:
        """Play a recorded CSV or Parquet file of minute bars through the pipeline."""
        from tqdm import tqdm

        from webapp.providers.replay import ReplayFileError, ReplayProvider, load_bars

        try:
            total = len(ReplayProvider(load_bars(Path(path))).minutes)
        except ReplayFileError as exc:
            raise click.ClickException(str(exc)) from None
        alerts = 0
        with tqdm(total=total, unit="min", desc="replay") as bar:
            def each(report: TickReport) -> None:
                nonlocal alerts
                alerts += len(report.alerts)
                bar.set_postfix(at=report.at.strftime("%Y-%m-%d %H:%M"), alerts=alerts)
                bar.update(1)

            reports = ticks.replay(path, speed, each)
        click.echo(f"replayed {len(reports)} minutes, {sum(r.accepted for r in reports)} quotes, "
                   f"{alerts} alerts")
        skipped = Counter(r.skipped for r in reports if r.skipped)
        for why, n in skipped.items():
            click.echo(f"  {n} minute(s) not replayed: {why} (the live tick or an earlier replay "
                       "already ran that slot)")
        dropped = Counter(why.split(":")[0] for r in reports for why in r.stale.values())
        for why, n in dropped.most_common():
            click.echo(f"  {n} bar(s) dropped: {why}")
        examples = {why.split(":")[0]: (t, why) for r in reports for t, why in r.stale.items()}
        for t, why in examples.values():
            click.echo(f"    e.g. {t}: {why}")

    @app.cli.group("tokens")
    def tokens() -> None:
        """API tokens for the write endpoints (stored hashed)."""

    @tokens.command("create")
    @click.argument("name")
    def tokens_create(name: str) -> None:
        """Create a token; it is printed once and cannot be shown again."""
        token = symbols.create_token(db.session, name)
        click.echo(token)
        click.echo(f"(token for {name!r}; keep it: only its hash is stored)", err=True)

    @tokens.command("list")
    def tokens_list() -> None:
        """Tokens by id, name and prefix (never the token)."""
        for t in symbols.list_tokens(db.session):
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
            click.echo(f"{t.id}\t{t.prefix}…\t{t.name}\tcreated {t.created_at:%Y-%m-%d %H:%M}\t{state}")

    @tokens.command("revoke")
    @click.argument("ident")
    def tokens_revoke(ident: str) -> None:
        """Revoke a token by id or prefix."""
        count = symbols.revoke_token(db.session, ident)
        if not count:
            raise click.ClickException(f"no active token with id or prefix {ident!r}")
        click.echo(f"revoked {count} token(s)")

    @app.cli.group("users")
    def users_group() -> None:
        """Users who sign in to the pages to change things (passwords stored hashed)."""

    @users_group.command("create")
    @click.argument("name")
    @click.option("--password-stdin", is_flag=True, help="read the password from standard input")
    def users_create(name: str, password_stdin: bool) -> None:
        """Create a user; asks for the password twice (or reads it from stdin)."""
        from webapp.store import users

        password = (sys.stdin.readline().rstrip("\n") if password_stdin
                    else click.prompt("Password", hide_input=True, confirmation_prompt=True))
        try:
            user = users.create(db.session, name, password)
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"created user {user.username!r}: sign in at /login")
