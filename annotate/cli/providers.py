"""``annotate providers``: what this ONNX Runtime offers and what auto picks here."""

from __future__ import annotations

from annotate.cli.app import app
from annotate.cli.console import setup_logging
from annotate.config import Config


@app.command()
def providers() -> None:
    """List the execution providers this ONNX Runtime build offers and what auto picks here."""
    from rich.console import Console
    from rich.table import Table

    from annotate.providers import (
        PlatformInfo,
        available_providers,
        cannot_start,
        describe,
        resolve,
    )

    setup_logging()
    plat = PlatformInfo.current()
    available = available_providers()
    broken = cannot_start(available, plat.system)
    setting = Config.load().get("provider", None, "--provider")
    chosen = resolve(setting.value, setting.origin, plat, available, broken)
    auto = resolve(None, None, plat, available, broken)
    table = Table(title=f"Execution providers on {plat}")
    table.add_column("Provider")
    table.add_column("--provider")
    table.add_column("Here")
    for name, short, status in describe(plat, available, broken):
        table.add_row(name, short, status)
    console = Console()
    console.print(table)
    console.print(f"auto: {' → '.join(auto.providers)} ({auto.reason})", highlight=False)
    for note in auto.notes:
        console.print(f"  {note}", highlight=False)
    if chosen.origin:
        console.print(
            f"annotate run will use {chosen.preferred} ({chosen.reason})", highlight=False
        )
    console.print(
        "Precedence: --provider > ANNOTATE_PROVIDER > annotate.toml > auto", highlight=False
    )
