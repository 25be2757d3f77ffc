"""``taskloss compare``: subject- and seed-level comparisons of any long per-case results CSV.

The analysis is :mod:`taskloss.metrics.comparisons` (docs/statistics.md); this module reads the
options, computes everything, and only then writes ``comparisons.csv`` and ``rank_stability.csv``.
"""

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from taskloss.cli.app import app, finite, output_folder
from taskloss.errors import InputError
from taskloss.metrics.comparisons import (
    Comparison,
    compare,
    families_for,
    rank_stability,
    read_long_table,
    write_comparisons,
    write_rank_stability,
)

COMPARISONS_FILE = "comparisons.csv"
RANK_FILE = "rank_stability.csv"


def _smallest_effects(pairs: list[str]) -> dict[str, float]:
    """``NAME=VALUE`` options -> {name: value}; a malformed pair is an InputError naming it."""
    effects = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name or not math.isfinite(number):
            raise InputError(f"--smallest-effect {pair!r}: not NAME=VALUE with a number; write e.g. "
                             "--smallest-effect psnr=0.5")
        effects[name] = number
    return effects


def _table(rows: list[Comparison]) -> Table:
    table = Table(title="method - baseline, subjects (and seeds) as units")
    for column in ("family", "metric", "method", "subjects", "seeds", "difference", "interval", "p adj.", "verdict"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.family, r.metric, r.method, str(r.n_subjects), str(r.n_seeds), f"{r.difference:+.4g}",
                      f"[{r.ci_low:+.4g}, {r.ci_high:+.4g}]", f"{r.p_adjusted:.3g}", r.verdict)
    return table


@app.command("compare")
def compare_command(
    results: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                            help="Long CSV: method, subject, case, optional seed, one column per "
                                                 "metric.")],
    baseline: Annotated[str, typer.Option(help="The method every other method is compared with.")],
    out: Annotated[Path, typer.Option(help="Folder for comparisons.csv and rank_stability.csv.")],
    metric: Annotated[list[str] | None, typer.Option(help="A metric column to compare (repeat; default: all).")] = None,
    primary: Annotated[list[str] | None, typer.Option(
        help="A metric of the primary family (repeat); Holm runs over its metric x method tests. Every other "
             "metric is its own exploratory family.")] = None,
    smallest_effect: Annotated[list[str] | None, typer.Option(
        help="NAME=VALUE: the smallest difference that matters for a metric, enabling the 'equivalent' verdict.")
    ] = None,
    lower_is_better: Annotated[list[str] | None, typer.Option(
        help="A metric on which the lowest value ranks first (repeat), for rank stability.")] = None,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, callback=finite, help="Level of the tests.")] = 0.05,
) -> None:
    """Compare methods with a baseline, with subjects (and seeds) as the units, Holm per family."""
    table = read_long_table(results)
    metrics = list(metric or table.metric_columns)
    unknown = [m for m in [*metrics, *(lower_is_better or [])] if m not in table.metric_columns]
    if unknown:
        raise InputError(f"metric {unknown[0]} is not a column of {results} (metrics: "
                         f"{', '.join(table.metric_columns)}); name one of those")
    rows = compare(table, baseline, families_for(metrics, primary or []), alpha=alpha,
                   smallest_effects=_smallest_effects(smallest_effect or []))
    shares = rank_stability(table, metrics, lower_is_better=lower_is_better or [])
    with output_folder(out):
        write_comparisons(out / COMPARISONS_FILE, rows)
        write_rank_stability(out / RANK_FILE, shares)
    console = Console()
    if not console.is_terminal:  # a file or a pipe: no 80-column wrap of the numbers
        console = Console(width=160)
    console.print(_table(rows))
    print(f"written: {out / COMPARISONS_FILE}, {out / RANK_FILE}")
