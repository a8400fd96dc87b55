"""Each setting is declared once (annotate/settings.py) and everything else is derived from
that: both commands' options, their parsing, the batch manifest's settings identity and a
batch worker's detector cache key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from annotate.batch.job import detector_key
from annotate.batch.manifest import settings, settings_id
from annotate.pipeline import RunOptions
from annotate.settings import BATCH, RUN, Declared, declared, value_at

DECLARED = [d for d in declared(RunOptions) if d.setting.flags]
OPTIONS = RunOptions(source="", model=Path("m.onnx"))


def _with(options: RunOptions, d: Declared, value: Any) -> RunOptions:
    """``options`` with the setting at ``d.path`` (nested ones included) set to ``value``."""
    owner, _, name = d.path.rpartition(".")
    if owner:
        return replace(options, **{owner: replace(getattr(options, owner), **{name: value})})
    return replace(options, **{name: value})


def test_every_setting_is_declared_fully():
    assert len(DECLARED) >= 40
    for d in DECLARED:
        s = d.setting
        assert s.help and s.panel and s.commands <= {RUN, BATCH}, d.path
        assert s.example is not None and s.example != d.default, d.path
        if s.requires:
            assert s.does, d.path


@pytest.mark.parametrize("command", [RUN, BATCH])
def test_every_setting_reaches_the_help_of_its_commands(cli, command):
    r = cli(command, "--help")
    assert r.code == 0
    shown = r.out + r.err
    own = {"--output", "--json", "--export"}  # batch's own: an output directory, a switch, formats
    for d in DECLARED:
        flag = d.setting.flags[0].split("/")[0]
        present = f"{flag} " in shown or f"{flag}\n" in shown
        if command in d.setting.commands:
            assert present, (command, flag)
        elif flag not in own:
            assert not present, (command, flag)


@pytest.mark.parametrize("d", [d for d in DECLARED if BATCH in d.setting.commands],
                         ids=lambda d: d.path)  # fmt: skip
def test_every_output_setting_changes_the_settings_identity(d):
    before = settings_id(settings(OPTIONS, "sha", True, False))
    after = settings_id(settings(_with(OPTIONS, d, d.setting.example), "sha", True, False))
    assert (before != after) == d.setting.outputs, d.path


@pytest.mark.parametrize("d", DECLARED, ids=lambda d: d.path)
def test_every_detector_setting_changes_the_detector_cache_key(d):
    changed = _with(OPTIONS, d, d.setting.example)
    assert (detector_key(OPTIONS, 2) != detector_key(changed, 2)) == d.setting.detector, d.path


def _typed(d: Declared) -> list[str]:
    """The example value as a user types it."""
    flag, example = d.setting.flags[0], d.setting.example
    if isinstance(example, bool):
        on, _, off = flag.partition("/")
        return [on] if example else [off or f"--no-{on[2:]}"]
    if d.path == "serve":
        return [flag, "{}:{}".format(*example)]
    if isinstance(example, (list, tuple)) and flag in ("--line", "--zone", "--serve-host"):
        return [part for item in example for part in (flag, str(item))]
    if isinstance(example, list):
        return [flag, ",".join(example)]
    return [flag, str(example)]


@pytest.mark.parametrize("command", [RUN, BATCH])
def test_every_setting_is_parsed_from_what_the_user_types(command, monkeypatch, tmp_path):
    """Each option given its example value on the command line reaches the options as that
    value (the parsing declared with it), and every other setting keeps its default."""
    import typer

    from annotate.cli import app
    from annotate.cli.options import run_options
    from annotate.config import Config

    monkeypatch.delenv("ANNOTATE_MODEL", raising=False)
    monkeypatch.delenv("ANNOTATE_PROVIDER", raising=False)
    group = typer.main.get_command(app)
    needed = ["x.mp4"] if command == RUN else ["x.mp4", "-o", "out"]
    for d in [d for d in DECLARED if command in d.setting.commands]:
        ctx = group.make_context("annotate", [command, *needed, *_typed(d)])
        sub = group.get_command(ctx, command)
        params = sub.make_context(command, [*needed, *_typed(d)], parent=ctx).params
        options = run_options("x.mp4", params, Config())
        assert value_at(options, d.path) == d.setting.example, d.path
        for other in DECLARED:
            if other.path not in (d.path, "track") and not d.path.startswith("end"):
                assert value_at(options, other.path) == other.default, (d.path, other.path)
