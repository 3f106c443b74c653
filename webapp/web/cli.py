"""CLI commands (``flask --app wsgi …``).  Thin: they call services and print."""
from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from flask import Flask

from webapp.extensions import db
from webapp.services import context, ticks
from webapp.store import tokens, users
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
    def tokens_group() -> None:
        """API tokens: an owner, scopes and an expiry each (stored hashed)."""

    @tokens_group.command("create")
    @click.argument("username")
    @click.option("--name", default="cli", show_default=True, help="what the token is for")
    @click.option("--scope", "scopes", multiple=True, type=click.Choice(tokens.SCOPES),
                  help="repeat for several (default: read)")
    @click.option("--expires-days", type=click.IntRange(min=1), default=None,
                  help="days until it stops working (default: until revoked)")
    def tokens_create(username: str, name: str, scopes: tuple[str, ...], expires_days: int | None) -> None:
        """Make a token acting as USERNAME; it is printed once and cannot be shown again."""
        user = users.by_name(db.session, username)
        if user is None:
            raise click.ClickException(f"no user {username!r} (flask --app wsgi users create)")
        expires = datetime.now(timezone.utc) + timedelta(days=expires_days) if expires_days else None
        try:
            token, text = tokens.create(db.session, user.id, name, scopes or ("read",), admin=user.is_admin,
                                        expires_at=expires)
        except tokens.TokenError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(text)
        click.echo(f"(token {token.id} {name!r} of {user.username}, scopes {', '.join(token.scopes)}; "
                   "keep it: only its hash is stored)", err=True)

    @tokens_group.command("list")
    @click.option("--user", "username", default=None, help="only this user's")
    def tokens_list(username: str | None) -> None:
        """Tokens by id, prefix, owner, name and scopes (never the token)."""
        owners = {u.id: u.username for u in users.all_users(db.session)}
        wanted = users.by_name(db.session, username) if username else None
        if username and wanted is None:
            raise click.ClickException(f"no user {username!r}")
        for t in tokens.of_user(db.session, wanted.id if wanted else None):
            state = (f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else
                     f"expires {t.expires_at:%Y-%m-%d}" if t.expires_at else "active")
            used = f"used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
            click.echo(f"{t.id}\t{t.prefix}…\t{owners.get(t.user_id, '-')}\t{t.name}\t{','.join(t.scopes)}\t"
                       f"{used}\t{state}")

    @tokens_group.command("revoke")
    @click.argument("ident")
    def tokens_revoke(ident: str) -> None:
        """Revoke a token by id or prefix; it stops working at once."""
        count = tokens.revoke(db.session, ident)
        if not count:
            raise click.ClickException(f"no active token with id or prefix {ident!r}")
        click.echo(f"revoked {count} token(s)")

    @app.cli.group("users")
    def users_group() -> None:
        """Users who sign in (passwords stored hashed); only an operator here manages them."""

    def _password(from_stdin: bool) -> str:
        return (sys.stdin.readline().rstrip("\n") if from_stdin
                else click.prompt("Password", hide_input=True, confirmation_prompt=True))

    @users_group.command("create")
    @click.argument("name")
    @click.option("--admin", is_flag=True, help="an admin: manages the tracked symbols and the built-in "
                                                "rule (the first admin adopts rows from before owners)")
    @click.option("--password-stdin", is_flag=True, help="read the password from standard input")
    def users_create(name: str, admin: bool, password_stdin: bool) -> None:
        """Create a user; asks for the password twice (or reads it from stdin)."""
        try:
            user = users.create(db.session, name, _password(password_stdin), admin=admin)
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"created {user.role} {user.username!r}: sign in at /login")

    @users_group.command("list")
    def users_list() -> None:
        """Users by id, name, role and whether disabled."""
        for u in users.all_users(db.session):
            click.echo(f"{u.id}\t{u.username}\t{u.role}" + ("\tdisabled" if u.disabled else ""))

    def _named(name: str) -> users.User:
        user = users.by_name(db.session, name)
        if user is None:
            raise click.ClickException(f"no user {name!r} (flask --app wsgi users list)")
        return user

    @users_group.command("disable")
    @click.argument("name")
    def users_disable(name: str) -> None:
        """Disable a user: their sessions end, sign-in and tokens stop working, their rules rest;
        everything they own is kept (``enable`` gives it back)."""
        user = _named(name)
        users.set_disabled(db.session, user.id, True)
        click.echo(f"{user.username!r} is disabled: signed out everywhere, tokens refused, rules resting")

    @users_group.command("enable")
    @click.argument("name")
    def users_enable(name: str) -> None:
        """Enable a disabled user again (they sign in afresh)."""
        user = _named(name)
        users.set_disabled(db.session, user.id, False)
        click.echo(f"{user.username!r} is enabled")

    @users_group.command("delete")
    @click.argument("name")
    @click.option("--yes", is_flag=True, help="do not ask for confirmation")
    def users_delete(name: str, yes: bool) -> None:
        """Delete a user and everything they own: rules and their alerts, webhook endpoints and
        deliveries, tokens, watchlists.  This cannot be undone (``disable`` keeps them)."""
        user = _named(name)
        if not yes:
            click.confirm(f"delete {user.username!r} and all their rules, alerts, webhooks, tokens and "
                          "watchlists?", abort=True)
        users.delete(db.session, user.id)
        click.echo(f"deleted {user.username!r} and everything they owned")

    @users_group.command("password")
    @click.argument("name")
    @click.option("--password-stdin", is_flag=True, help="read the password from standard input")
    def users_password(name: str, password_stdin: bool) -> None:
        """Set a user's password; every session of theirs ends."""
        user = _named(name)
        try:
            users.set_password(db.session, user.id, _password(password_stdin))
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"password of {user.username!r} changed; their sessions have ended")

    @users_group.command("role")
    @click.argument("name")
    @click.argument("role", type=click.Choice(users.ROLES))
    def users_role(name: str, role: str) -> None:
        """Make a user an admin or a member (their tokens follow: never more than their owner)."""
        user = _named(name)
        users.set_role(db.session, user.id, role)
        click.echo(f"{user.username!r} is now {role}")
