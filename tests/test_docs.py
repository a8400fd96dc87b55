"""The documentation holds: every relative link leads somewhere, and every ``annotate``
command it shows parses (options that exist, values of the right type)."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import typer

from annotate.cli import app
from annotate.cli.options import optional_values
from tests.helpers import ROOT

DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md",
               *(ROOT / "docs").glob("*.md")])  # fmt: skip
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _code_blocks(text: str) -> list[tuple[str, list[str]]]:
    blocks, language, lines = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                blocks.append((language, lines))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def _commands(text: str) -> list[str]:
    """``annotate …`` lines of the shell blocks, continuations joined."""
    found = []
    for language, lines in _code_blocks(text):
        if language not in ("sh", "bash", "console", ""):
            continue
        joined = "\n".join(lines).replace("\\\n", " ")
        for line in joined.splitlines():
            for part in re.split(r"&&|\||\s\d?>", line):  # not pipes or redirections
                part = part.strip()
                if part.startswith("annotate "):
                    found.append(part)
    return found


def test_the_documents_are_found():
    names = {p.name for p in DOCS}
    assert {"README.md", "CONTRIBUTING.md", "run.md", "batch.md", "performance.md"} <= names
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(doc):
    text = doc.read_text()
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        path, _, anchor = target.partition("#")
        where = (doc.parent / path).resolve() if path else doc
        assert where.exists(), f"{doc.name}: {target} does not exist"
        if anchor and where.suffix == ".md":
            headings = [_slug(h) for h in re.findall(r"^#+ .*$", where.read_text(), re.M)]
            assert anchor in headings, f"{doc.name}: no heading #{anchor} in {path or doc.name}"


#: Click's base error and the command class, from the Click Typer uses (its own copy, in
#: newer Typer).
CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _parse(command: Any, args: list[str], parent: Any) -> None:
    """Parse as the CLI would, without running anything; a group hands on to its command."""
    name = args[0] if parent is not None else "annotate"
    rest = args[1:] if parent is not None else args
    try:
        ctx = command.make_context(name, list(rest), parent=parent)
    except typer.Exit:  # --help, --version
        return
    if not hasattr(command, "get_command"):
        return
    protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None)
    remaining = [*(protected or []), *ctx.args]
    if remaining:
        sub = command.get_command(ctx, remaining[0])
        assert sub is not None, f"no command {remaining[0]!r}"
        _parse(sub, remaining, ctx)


def test_a_wrong_command_is_caught():
    group = typer.main.get_command(app)
    for bad in ("run x.mp4 --conff 0.5", "run x.mp4 --conf high", "batch in/ -o o --jobz 3"):
        with pytest.raises(CLICK_ERROR):
            _parse(group, optional_values(shlex.split(bad)), None)
    with pytest.raises(AssertionError, match="no command 'nope'"):
        _parse(group, ["nope"], None)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_shown_parses(doc):
    group = typer.main.get_command(app)
    for line in _commands(doc.read_text()):
        args = optional_values(shlex.split(line, comments=True)[1:])
        try:
            _parse(group, args, None)
        except CLICK_ERROR as e:
            pytest.fail(f"{doc.name}: {line!r}: {e.format_message()}")  # type: ignore[attr-defined]


def test_the_version_moves_with_the_changelog():
    """The newest release heading in CHANGELOG.md is pyproject.toml's version."""
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    releases = re.findall(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert version is not None and releases and releases[0] == version.group(1)
