"""``annotate models``: list, pull, locate, register and quantize models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from annotate.cli.app import models_app
from annotate.cli.console import download, setup_logging
from annotate.errors import AnnotateError, ModelNotFoundError, UsageError


@models_app.command("list")
def models_list() -> None:
    """Known model names with size, licence, input size and whether they are here."""
    from rich.console import Console
    from rich.table import Table

    from annotate.models import local_path, registry

    setup_logging()
    known = registry()
    table = Table()
    for column in ("name", "family", "input", "size", "licence", "here"):
        table.add_column(column)
    for entry in known.values():
        path = local_path(entry)
        size = f"{entry.size / 1e6:.1f} MB" if entry.size else "?"
        here = str(path) if path else f"no (annotate models pull {entry.name})"
        table.add_row(
            entry.name, entry.family, str(entry.input or "auto"), size, entry.licence, here
        )
    Console(highlight=False).print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A known model name.")]) -> None:
    """Download a known model into the user cache, verified by sha256."""
    from annotate.models import registry

    setup_logging()
    entry = registry().get(name.lower())
    if entry is None:
        raise UsageError(f"unknown model '{name}'; see 'annotate models list'")
    print(download(entry))


@models_app.command("path")
def models_path(name: Annotated[str, typer.Argument(help="A known model name.")]) -> None:
    """Print where a known model is on disk (exit 1 if it is not there yet)."""
    from annotate.models import find_model

    setup_logging()
    try:
        print(find_model(name))
    except ModelNotFoundError as e:  # a known name not fetched yet: a state, not a usage error
        raise AnnotateError(str(e)) from None


@models_app.command("add")
def models_add(
    file: Annotated[Path, typer.Argument(help="An .onnx file on this machine.")],
    name: Annotated[
        str | None,
        typer.Option(help="Name to use it by [default: from the file name].", show_default=False),
    ] = None,
) -> None:
    """Register a local model file (for machines without internet)."""
    from annotate.models.store import add

    setup_logging()
    entry = add(file, name)
    print(f"{entry.name}: {entry.path or file}")


@models_app.command("quantize")
def models_quantize(
    name: Annotated[str, typer.Argument(help="A known model name or an .onnx path.")],
    int8: Annotated[bool, typer.Option("--int8", help="INT8, calibrated on real frames.")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="FP16 (for CoreML and GPUs).")] = False,
    calibration: Annotated[
        list[str] | None,
        typer.Option(
            help="Images or videos to calibrate INT8 on [default: the bundled photo].",
            show_default=False,
        ),
    ] = None,
    frames: Annotated[int, typer.Option(help="Calibration frames.")] = 64,
) -> None:
    """Make an INT8 or FP16 variant and register it as NAME-int8 / NAME-fp16."""
    from annotate.bench import default_image_path
    from annotate.models import cache_dir, find_model, registry
    from annotate.models.store import add
    from annotate.models.variants import convert_fp16, quantize_int8

    setup_logging()
    if int8 == fp16:
        raise UsageError("give exactly one of --int8 and --fp16")
    model = find_model(name, download=download)
    kind = "int8" if int8 else "fp16"
    base = registry().get(name.lower())
    stem = base.name if base else model.stem
    cache_dir().mkdir(parents=True, exist_ok=True)
    target = cache_dir() / f"{model.stem}.{kind}.onnx"
    if int8:
        sources = calibration or [str(default_image_path())]
        quantize_int8(model, target, sources, frames)
    else:
        convert_fp16(model, target)
    entry = add(target, f"{stem}-{kind}")
    print(f"{entry.name}: {target}")
