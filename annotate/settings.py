"""A run's settings, each declared once, on its field: the flag, help text and default, and
what it changes. The CLI's options for ``run`` and ``batch``, the parsing of their values,
the batch manifest's settings identity and a worker's detector cache key are all derived from
these declarations, so a new setting is one field (CONTRIBUTING.md, "Adding a setting").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: Commands a setting can be an option of.
RUN, BATCH = "run", "batch"
BOTH = frozenset({RUN, BATCH})
RUN_ONLY = frozenset({RUN})
#: The groups settings are listed under in ``--help``.
DETECT, TRACK, PRIVACY = "What to detect", "Tracking and counting", "Privacy"
OUTPUT, ENCODE, SPAN, SPEED = "Outputs", "Encoding", "Which frames", "Speed"


class _FieldDefault:
    def __repr__(self) -> str:
        return "FIELD_DEFAULT"


#: A :class:`Setting`'s ``cli_default`` when the option's default is the field's own.
FIELD_DEFAULT: Any = _FieldDefault()


@dataclass(frozen=True)
class Setting:
    """What a field means to the user and to the rest of the program.

    - ``flags``: its options (``("--conf",)``, ``("--boxes/--no-boxes",)``); empty for a
      setting of the library only.
    - ``commands``: the commands that offer it.
    - ``outputs``: changing it changes what a run writes, so it is part of the batch
      manifest's settings identity (``--resume`` redoes a job when it changes).
    - ``detector``: changing it needs another loaded detector (a batch worker's cache key).
    - ``config``: the key an ``annotate.toml`` (and, for some, the environment) may set; the
      option's own default is then ``None``, so a file's value can apply.
    - ``cli_type``: the type as typed, where the field holds something parsed from it
      (``--classes person,car`` is text, the field a list); ``parse`` turns one into the other,
      and ``cli_default`` is the option's default where it is not the field's.
    - ``example``: another valid value, unlike the default (tests change each setting to it).
    - ``panel``: the group it is listed under in ``--help``.
    - ``requires``/``does``: an option typed without the settings it works on is an error,
      never silently ignored.
    """

    flags: tuple[str, ...] = ()
    help: str = ""
    commands: frozenset[str] = BOTH
    outputs: bool = False
    detector: bool = False
    config: str | None = None
    cli_type: Any = None
    cli_default: Any = FIELD_DEFAULT  # what the option defaults to, if not the field's
    parse: Callable[[Any], Any] | None = None
    example: Any = None
    panel: str = "Options"
    #: Settings that must be on (not at their defaults) for this one to mean anything when
    #: typed: ``"blur"``, ``"lines|zones"`` (either), ``"blur&detect_every"`` (both); and
    #: what this one does, for the error that says so.
    requires: str | None = None
    does: str = ""
    metavar: str | None = None
    show_default: bool = True

    @property
    def param(self) -> str:
        """The CLI parameter's name, from its first flag (``--line`` → ``line``)."""
        first = self.flags[0].split("/")[0]
        return first.lstrip("-").replace("-", "_")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    **declared: Any,
) -> Any:
    """A dataclass field with its :class:`Setting` attached."""
    meta = {"setting": Setting(**declared)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Declared:
    """One declared setting: its dotted path in the options (``encode.codec``), the field's
    name, default and annotation, and its :class:`Setting`."""

    path: str
    name: str
    default: Any
    setting: Setting
    type: str  # the field's annotation, as written


def declared(cls: type, prefix: str = "") -> Iterator[Declared]:
    """Every declared setting of a dataclass, nested dataclass fields included, in order."""
    for f in dataclasses.fields(cls):
        info = f.metadata.get("setting")
        if info is not None:
            default = (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else (f.default)
            )
            yield Declared(prefix + f.name, f.name, default, info, str(f.type))
        elif f.metadata.get("nested") is not None:
            yield from declared(f.metadata["nested"], f"{prefix}{f.name}.")


def nested(cls: type) -> Any:
    """A field holding a dataclass whose own fields declare settings (``encode``)."""
    return dataclasses.field(default_factory=cls, metadata={"nested": cls})


def value_at(options: Any, path: str) -> Any:
    for part in path.split("."):
        options = getattr(options, part)
    return options


def plain(value: Any) -> Any:
    """A setting's value as JSON can hold it (paths as text, tuples as lists)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def is_on(options: Any, d: Declared) -> bool:
    """Whether a setting is on: away from its default, and not empty."""
    value = value_at(options, d.path)
    return value != d.default and value not in (None, False, [], ())
