"""The layout is the architecture: packages import downward only.

Every import in ``webapp/`` and ``jobs/`` (module level or inside a function,
since a lazy import is still a dependency) is read with ``ast`` and checked
against the layer ranks below.  A module may import its own package or a
package of a lower rank; never a higher one, and never a different package
of the same rank.  ``core`` is pure on top of that: no Redis, SQL, HTTP or
sockets, and no reading of the clock.  Nothing in the product imports the
benchmarks or the tests.  And no module reaches into another's internals:
a ``_private`` name is imported, or read off an imported module, only by the
module that defines it (so the domain modules of ``services`` meet only
through each other's public functions).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# lowest first; docs/architecture.md's layout section names the same packages
RANKS = {
    "core": 0,  # pure functions and records
    "names": 1, "config": 1,  # shared names; the one reader of the environment
    "extensions": 2,  # unbound Flask extensions, the Redis client
    "providers": 3, "streams": 3,  # market-data sources, one module each
    "store": 4,  # Redis and Postgres
    "tick": 5, "live": 5, "delivery": 5, "backfill": 5,  # the minute pipeline; the stream process's work;
    # webhooks; a new symbol's history
    "evaluate": 6,  # alerts on the print: judges each shard's rules at the stream's trades (reuses the
    # tick's bars and publisher)
    "services": 7,  # what the edges call
    "web": 8,  # pages, API, Socket.IO, HTTP, errors, CLI
    "app": 9,  # the app factory
    "launch": 10, "jobs": 10,  # make run's launcher; RQ jobs and the worker/scheduler processes
}
NOT_IN_CORE = {"redis", "sqlalchemy", "psycopg2", "requests", "urllib3", "urllib", "http", "socket",
               "flask", "flask_socketio", "flask_sqlalchemy", "flask_migrate", "socketio", "websockets",
               "rq", "rq_scheduler", "gevent", "aiohttp", "httpx", "asyncio", "webapp.extensions"}
CLOCK_CALLS = {"now", "utcnow", "today"}  # datetime.now(), date.today(), pd.Timestamp.now() …
TIME_CALLS = {"time", "monotonic", "perf_counter", "time_ns"}  # time.time() …
NEVER_IMPORTED = ("bench", "tests")


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "jobs":
        return "jobs"
    if parts[0] != "webapp":
        return None
    if len(parts) == 1:
        return "app"
    return parts[1] if parts[1] in RANKS else None


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports_of(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every import; ``from P import m`` names P.m when m is a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((node.lineno, full if _is_module(full) else node.module))
    return found


def violations(module: str, source: str) -> list[str]:
    """What ``source`` (the text of ``module``) imports or calls against the layering."""
    tree = ast.parse(source)
    mine = layer_of(module)
    out = []
    for line, target in imports_of(tree):
        where = f"{module}:{line} imports {target}"
        if target.split(".")[0] in NEVER_IMPORTED:
            out.append(f"{where}: the product never imports {target.split('.')[0]}/")
            continue
        theirs = layer_of(target)
        if mine == "core" and (target.split(".")[0] in NOT_IN_CORE or target in NOT_IN_CORE):
            out.append(f"{where}: core is pure (no Redis, SQL, HTTP, sockets or extensions)")
        if mine is None or theirs is None or theirs == mine:
            continue
        if RANKS[theirs] >= RANKS[mine]:
            out.append(f"{where}: {mine} (rank {RANKS[mine]}) may not import {theirs} (rank {RANKS[theirs]})")
        if mine == "jobs" and theirs == "web":
            out.append(f"{where}: jobs call services, never the web edge")
    out += _internals(module, tree)
    if mine == "core":
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            on_time = isinstance(node.func.value, ast.Name) and node.func.value.id == "time"
            if node.func.attr in CLOCK_CALLS or (on_time and node.func.attr in TIME_CALLS):
                out.append(f"{module}:{node.lineno} calls .{node.func.attr}(): core takes the time "
                           "as an argument")
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _internals(module: str, tree: ast.AST) -> list[str]:
    """Imports of another product module's ``_private`` names, and ``mod._name`` on an imported module."""
    out = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in ("webapp", "jobs") and node.module != module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if _private(alias.name):
                    out.append(f"{module}:{node.lineno} imports {full}: another module's internals")
                elif _is_module(full):
                    aliases[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("webapp", "jobs") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and aliases[node.value.id] != module and _private(node.attr):
            out.append(f"{module}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}: "
                       "another module's internals")
    return out


def product_modules() -> list[tuple[str, Path]]:
    paths = [*sorted((ROOT / "webapp").rglob("*.py")), *sorted((ROOT / "jobs").rglob("*.py")),
             ROOT / "wsgi.py"]
    out = []
    for p in paths:
        rel = p.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.append((".".join(parts), p))
    return out


def test_every_package_imports_downward_only() -> None:
    found = [v for module, path in product_modules() for v in violations(module, path.read_text())]
    assert found == [], "\n".join(found)


def test_every_webapp_module_is_in_a_layer() -> None:
    lost = [m for m, _ in product_modules() if m != "wsgi" and layer_of(m) is None]
    assert lost == [], f"modules outside every layer (add them to RANKS or move them): {lost}"


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("webapp.core.indicators", "import redis", "core is pure"),
    ("webapp.core.market", "from sqlalchemy.orm import Session", "core is pure"),
    ("webapp.core.market", "def f():\n    from webapp.extensions import get_redis", "rank 0"),
    ("webapp.core.market", "from datetime import datetime\nx = datetime.now()", "calls .now()"),
    ("webapp.core.market", "import time\nx = time.time()", "calls .time()"),
    ("webapp.store.hot", "from webapp.tick import pipeline", "store (rank 4) may not import tick"),
    ("webapp.providers.sim", "from webapp.streams import x", "providers (rank 3) may not import streams"),
    ("webapp.tick.pipeline", "from webapp.services import rules", "may not import services"),
    ("webapp.services", "from webapp.web.stocks import bp", "may not import web"),
    ("webapp.web.cli", "from bench.tick import run", "never imports bench"),
    ("jobs.tick", "from webapp.web import pages", "never the web edge"),
    ("webapp.services.charts", "from webapp.services.stocks import _views", "internals"),
    ("webapp.services.charts", "from webapp.services import stocks\nstocks._views()", "internals"),
    ("webapp.web.stocks", "from webapp.store import pg\npg._copy", "internals"),
])
def test_the_check_catches(module: str, source: str, expected: str) -> None:
    found = violations(module, source)
    assert any(expected in v for v in found), found


def test_the_check_allows_downward_imports() -> None:
    assert violations("webapp.web.stocks",
                      "from webapp.services import rules\nfrom webapp.store import alerts") == []
    assert violations("webapp.services.charts", "from webapp.services import stocks\nstocks.snapshot()") == []
    assert violations("webapp.tick.pipeline", "from webapp.core.latest import Latest\nimport redis") == []
    assert violations("webapp.core.market", "from datetime import datetime\nx = datetime.min.time()") == []
