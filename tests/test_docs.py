"""The README and ``docs/`` stay true to the tree: every relative link resolves, and every path they
name exists.

A link is ``[text](target)``: a target inside the repository must exist, and a ``#fragment`` must
be a heading of the page it points to (GitHub's anchors: lower case, punctuation dropped, spaces
as hyphens).  A path is a backticked ``webapp/…``, ``jobs/…``, ``tests/…``, ``bench/…``,
``templates/…``, ``static/…`` or ``migrations/…`` (a ``::test_name`` after a test file must name
a test in it), so a module that moves cannot leave the docs pointing at where it was.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
PATH = re.compile(r"`((?:webapp|jobs|tests|bench|templates|static|migrations)/[\w./-]*)(?:::(\w+))?[^`]*`")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: … are not ours to check here
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    assert broken == [], f"{page.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_named_path_exists(page: Path) -> None:
    missing = []
    for path, test in PATH.findall(page.read_text()):
        path = path.rstrip(".")
        where = ROOT / path
        if not where.exists():
            missing.append(path)
        elif test and where.is_file() and not re.search(rf"^def {test}\(", where.read_text(), re.M):
            missing.append(f"{path}::{test}")
    assert missing == [], f"{page.relative_to(ROOT)} names what is not there: {missing}"


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160, "the README keeps what a newcomer needs; detail goes to docs/"
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"the README does not link docs/{page.name}"


def test_the_check_catches_a_broken_link_and_a_moved_module(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# Title\n[ok](#title) [gone](nowhere.md) [bad](#nope)\n")
    found = [t for t in links(page)]
    assert found == ["#title", "nowhere.md", "#nope"] and "title" in anchors(page)
    assert PATH.findall("see `webapp/services.py` and `tests/web/test_health.py::test_x`") == [
        ("webapp/services.py", ""), ("tests/web/test_health.py", "test_x")]
