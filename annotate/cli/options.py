"""The options ``run``, ``bench`` and ``batch`` share, declared once, and the one function that
turns parsed flags, environment and config into complete :class:`RunOptions`.

Precedence is flag > environment > ``annotate.toml`` > default (:meth:`Config.get`), for the
settings a config file may hold; every other flag's default is in :mod:`annotate.defaults`.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from annotate import defaults
from annotate.config import Config
from annotate.errors import UsageError
from annotate.settings import FIELD_DEFAULT, SPAN, Declared, declared, is_on

if TYPE_CHECKING:
    from annotate.pipeline import RunOptions

log = logging.getLogger("annotate")

Source = Annotated[
    str | None, typer.Option("--source", "-s", help="Same as SOURCE.", show_default=False)
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="More detail.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]
Duration = Annotated[
    str | None,
    typer.Option(
        help="Process this long (seconds or [HH:]MM:SS).", show_default=False, rich_help_panel=SPAN
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def declared_option(path: str) -> Any:
    """The option of a declared setting, for a command that takes it outside
    :class:`RunOptions` (``bench --model``): one help text for both. Its default is
    ``None``, so the command's own default (or a config file's) applies."""
    from annotate.pipeline.options import RunOptions

    (d,) = [d for d in declared(RunOptions) if d.path == path]
    annotation, _default, extra = _option(d)
    return Annotated[annotation | None, typer.Option(*d.setting.flags, **extra)]


def with_settings(command: str) -> Callable[[F], F]:
    """Give a command function the options of every setting declared for ``command``
    (:mod:`annotate.settings`); it takes them as ``**settings`` and reads them from
    ``ctx.params``."""

    def wrap(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        extra = [_parameter(d) for d in _declared(command)]
        # In --help: the command's own options, the settings (--duration after --end), and
        # --quiet and --verbose last.
        keyword = inspect.Parameter.KEYWORD_ONLY
        last = [p.replace(kind=keyword) for p in own if p.name in ("quiet", "verbose")]
        duration = [p.replace(kind=keyword) for p in own if p.name == "duration"]
        own = [p for p in own if p.name not in ("quiet", "verbose", "duration")]
        at = next((i + 1 for i, p in enumerate(extra) if p.name == "end"), len(extra))
        extra[at:at] = duration
        func.__signature__ = signature.replace(parameters=own + extra + last)  # type: ignore[attr-defined]
        func.__annotations__ = {**func.__annotations__, **{p.name: p.annotation for p in extra}}
        return func

    return wrap


def _declared(command: str) -> list[Declared]:
    from annotate.pipeline import RunOptions

    return [d for d in declared(RunOptions) if d.setting.flags and command in d.setting.commands]


def _field_type(d: Declared) -> Any:
    s = d.setting
    if s.cli_type is not None:
        cli_default = d.default if s.cli_default is FIELD_DEFAULT else s.cli_default
        return s.cli_type | None if cli_default is None else s.cli_type
    return eval(d.type, {"Path": Path})  # the field's own annotation: builtins and Path


def _parameter(d: Declared) -> inspect.Parameter:
    annotation, default, extra = _option(d)
    option = typer.Option(default, *d.setting.flags, **extra)
    return inspect.Parameter(
        d.setting.param, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
    )


def _option(d: Declared) -> tuple[Any, Any, dict[str, Any]]:
    """A declared setting's option: its type, default and ``typer.Option`` keywords."""
    s = d.setting
    default = d.default if s.cli_default is FIELD_DEFAULT else s.cli_default
    text = s.help.rstrip(".")
    annotation = _field_type(d)
    if s.config is not None:  # the option's None lets the environment or a file apply
        default = None
        annotation = annotation | None
        if d.default is not None:
            text += f" [default {d.default}]"
    show = s.show_default and default is not None and s.config is None
    extra = {
        "help": text + ".",
        "show_default": show,
        "metavar": s.metavar,
        "rich_help_panel": s.panel,
    }
    return annotation, default, extra


def run_options(source: str, params: Mapping[str, Any], config: Config) -> RunOptions:
    """Complete options from the parsed flags (``ctx.params``), environment and config:
    each declared setting that the command has is parsed as its declaration says; the rest
    keep their defaults.

    Parses only; :meth:`RunOptions.validate` checks the values before anything runs.
    """
    from annotate.pipeline import RunOptions
    from annotate.pipeline.options import time_span

    values: dict[str, Any] = {"source": source}
    nested: dict[str, dict[str, Any]] = {}
    for d in declared(RunOptions):
        s = d.setting
        if not s.flags or s.param not in params or d.path in ("start", "end"):
            continue
        raw = params[s.param]
        if s.config is not None:
            chosen = config.get(s.config, raw, s.flags[0], d.default)
            raw = chosen.value
            if f"{d.name}_origin" in {f.name for f in fields(RunOptions)}:
                values[f"{d.name}_origin"] = chosen.origin
        if raw is None:
            continue  # not given: the field's default
        value = s.parse(raw) if s.parse is not None else raw
        if isinstance(value, str) and _field_type(d) in (Path, Path | None):
            value = Path(value)  # older Typer leaves ctx.params as Click parsed it (text)
        owner, _, name = d.path.rpartition(".")
        (nested.setdefault(owner, {}) if owner else values)[name] = value
    if "start" in params:
        values["start"], values["end"] = time_span(
            params.get("start"), params.get("duration"), params.get("end")
        )
    defaults_of = {f.name: f.default_factory for f in fields(RunOptions)}
    for owner, given in nested.items():
        values[owner] = replace(defaults_of[owner](), **given)  # type: ignore[operator]
    options = RunOptions(**values)
    implied = options.tracker_flags
    if implied and not options.track:
        log.info("Tracking is on for %s", " and ".join(implied))
        options = replace(options, track=True)
    if options.mot is not None and not options.classes:
        # MOT evaluation tools score every line as one kind of object.
        log.info(
            "--mot writes the tracks of every class to one file (the format has no class "
            "column); --classes person keeps one"
        )
    return options


def check_needed(ctx: typer.Context, options: RunOptions) -> None:
    """An option typed on the command line without the settings it works on is a usage
    error, never silently ignored (:attr:`Setting.requires`)."""
    from annotate.pipeline import RunOptions

    by_name = {d.name: d for d in declared(RunOptions)}
    for d in by_name.values():
        s = d.setting
        # By name: Typer may bring its own copy of Click, with its own ParameterSource enum.
        typed = getattr(ctx.get_parameter_source(s.param), "name", None) == "COMMANDLINE"
        if s.requires is None or not typed:
            continue
        joiner, names = ("&", " and ") if "&" in s.requires else ("|", " or ")
        wanted = [by_name[name] for name in s.requires.split(joiner)]
        on = [is_on(options, w) for w in wanted]
        if not (all(on) if joiner == "&" else any(on)):
            add = names.join(w.setting.flags[0] for w in wanted)
            raise UsageError(f"{s.flags[0]} {s.does}: add {add}")


def optional_values(argv: list[str]) -> list[str]:
    """Options whose value may be left out get their default value inserted: ``--blur``
    with no classes after it (last, or before another option) means people; ``--ray`` with
    no address after it (``auto``, ``local``, ``ray://…`` or ``HOST:PORT``) a local Ray; an
    empty one (``--ray ''``) stays, to be refused as an address."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if arg == "--blur" and (following is None or following.startswith("-")):
            out.append(defaults.BLUR_CLASSES)
        elif arg == "--ray" and (following is None or (not _ray_address(following) and following)):
            out.append("local")
    return out


def _ray_address(text: str) -> bool:
    return (
        text in ("auto", "local") or "://" in text or re.fullmatch(r"[\w.-]+:\d+", text) is not None
    )
