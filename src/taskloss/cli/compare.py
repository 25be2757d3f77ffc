"""``taskloss compare``: subject- and seed-level comparisons of any long per-case results CSV.

The analysis is :mod:`taskloss.metrics.comparisons` (docs/statistics.md); this module reads the
options, computes everything, and only then writes ``comparisons.csv``, ``rank_stability.csv`` and
``rank_stability.png``.
Ratio metrics (SIS: mean Dice on the outputs over mean Dice on the ground truth) are declared as
``--ratio sis=dice/dice_truth``: any tool's long CSV can hold the two columns, with empty cells
where a case has no region of interest.
"""

import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from taskloss.cli.app import app, finite, output_folder
from taskloss.errors import InputError
from taskloss.metrics.comparisons import (
    Comparison,
    LongTable,
    Ratio,
    compare,
    families_for,
    rank_stability,
    read_long_table,
    write_comparisons,
    write_rank_stability,
)
from taskloss.metrics.power import POWER, DesignMde, design_mdes, write_mdes
from taskloss.report.ranks import rank_stability_figure

COMPARISONS_FILE = "comparisons.csv"
RANK_FILE = "rank_stability.csv"
RANK_FIGURE = "rank_stability.png"
MDE_FILE = "mde.csv"


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


def _ratios(specs: list[str], table: LongTable) -> list[Ratio]:
    """``NAME=NUMERATOR/DENOMINATOR`` options -> ratios of two metric columns of ``table``.

    Raises:
        InputError: a malformed spec, a name that is already a metric column or another ratio, a
            numerator or denominator that is not a metric column, or the same column for both.
    """
    ratios: list[Ratio] = []
    columns = table.metric_columns
    for spec in specs:
        name, sep, fraction = spec.partition("=")
        numerator, bar, denominator = fraction.partition("/")
        name, numerator, denominator = name.strip(), numerator.strip(), denominator.strip()
        if not (sep and bar and name and numerator and denominator) or "/" in denominator:
            raise InputError(f"--ratio {spec!r}: not NAME=NUMERATOR/DENOMINATOR; write e.g. "
                             "--ratio sis=dice/dice_truth (two metric columns)")
        if name in columns or name in [r.name for r in ratios]:
            raise InputError(f"--ratio {spec!r}: the name {name} is already a "
                             f"{'metric column' if name in columns else 'ratio'}; give the ratio another name")
        for role, column in (("numerator", numerator), ("denominator", denominator)):
            if column not in columns:
                raise InputError(f"--ratio {spec!r}: {role} {column} is not a column of {table.source} (metrics: "
                                 f"{', '.join(columns)}); name one of those")
        if numerator == denominator:
            raise InputError(f"--ratio {spec!r}: numerator and denominator are the same column; name two columns")
        ratios.append(Ratio(name, numerator, denominator))
    return ratios


def _metrics(table: LongTable, metric: list[str], ratios: list[Ratio]) -> list[str]:
    """The compared metrics: the ``--metric`` names (columns or ratios), default every metric column
    but the ratios' denominators; then every ratio not named."""
    names = [*table.metric_columns, *(r.name for r in ratios)]
    unknown = [m for m in metric if m not in names]
    if unknown:
        raise InputError(f"metric {unknown[0]} is not a column of {table.source} (metrics: {', '.join(names)}); "
                         "name one of those, or declare it with --ratio")
    denominators = {r.denominator for r in ratios}
    chosen = list(metric) or [c for c in table.metric_columns if c not in denominators]
    return chosen + [r.name for r in ratios if r.name not in chosen]


def _table(rows: list[Comparison]) -> Table:
    table = Table(title="method - baseline, subjects (and seeds) as units")
    for column in ("family", "metric", "method", "subjects", "seeds", "difference", "interval", "p adj.", "verdict"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.family, r.metric, r.method, str(r.n_subjects), str(r.n_seeds), f"{r.difference:+.4g}",
                      f"[{r.ci_low:+.4g}, {r.ci_high:+.4g}]", f"{r.p_adjusted:.3g}", r.verdict)
    return table


def _mde_table(rows: list[DesignMde]) -> Table:
    table = Table(title=f"minimal detectable effect at power {POWER}, this data's design")
    for column in ("family", "metric", "method", "subjects", "seeds", "sd subject", "sd seed", "sd run", "alpha",
                   "MDE"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.family, r.metric, r.method, str(r.n_subjects), str(r.n_seeds), f"{r.sd_subject:.4g}",
                      f"{r.sd_seed:.4g}", f"{r.sd_run:.4g}", f"{r.alpha:.3g}", f"{r.mde:.4g}")
    return table


@app.command("compare")
def compare_command(
    results: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                            help="Long CSV: method, subject, case, optional seed, one column per "
                                                 "metric.")],
    baseline: Annotated[str, typer.Option(help="The method every other method is compared with.")],
    out: Annotated[Path, typer.Option(help="Folder for comparisons.csv, rank_stability.csv and rank_stability.png.")],
    metric: Annotated[list[str] | None, typer.Option(
        help="A metric column or --ratio name to compare (repeat; default: every column but the ratios' "
             "denominators, and every ratio).")] = None,
    primary: Annotated[list[str] | None, typer.Option(
        help="A metric of the primary family (repeat); Holm runs over its metric x method tests. Every other "
             "metric is its own exploratory family.")] = None,
    smallest_effect: Annotated[list[str] | None, typer.Option(
        help="NAME=VALUE: the smallest difference that matters for a metric, enabling the 'equivalent' verdict.")
    ] = None,
    lower_is_better: Annotated[list[str] | None, typer.Option(
        help="A metric on which the lowest value ranks first (repeat), for rank stability.")] = None,
    ratio: Annotated[list[str] | None, typer.Option(
        help="NAME=NUMERATOR/DENOMINATOR: a ratio metric of two columns, e.g. sis=dice/dice_truth (repeat): each "
             "method's sum of NUMERATOR over its sum of DENOMINATOR on the paired cases; compared like any metric.")
    ] = None,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, callback=finite, help="Level of the tests.")] = 0.05,
    method: Annotated[list[str] | None, typer.Option(
        help="A method to compare with the baseline (repeat; default: every method in the file but the baseline)."
    )] = None,
    mde: Annotated[bool, typer.Option(
        "--mde", help="Also write mde.csv: each comparison's minimal detectable effect (power 0.8) for this data's "
                      "subjects x seeds, at alpha over its family's size, from this data's variance.")] = False,
) -> None:
    """Compare methods with a baseline, with subjects (and seeds) as the units, Holm per family."""
    table = read_long_table(results)
    ratios = _ratios(ratio or [], table)
    metrics = _metrics(table, metric or [], ratios)
    families = [replace(f, methods=tuple(method)) if method else f for f in families_for(metrics, primary or [])]
    rows = compare(table, baseline, families, alpha=alpha,
                   smallest_effects=_smallest_effects(smallest_effect or []), ratios=ratios)
    shares = rank_stability(table, metrics, lower_is_better=lower_is_better or [], ratios=ratios,
                            methods=[baseline, *method] if method else None)
    mdes = design_mdes(table, baseline, families, alpha=alpha, ratios=ratios) if mde else []
    written = [out / COMPARISONS_FILE, out / RANK_FILE, out / RANK_FIGURE] + ([out / MDE_FILE] if mde else [])
    with output_folder(out):
        write_comparisons(out / COMPARISONS_FILE, rows)
        write_rank_stability(out / RANK_FILE, shares)
        rank_stability_figure(out / RANK_FIGURE, shares)
        if mde:
            write_mdes(out / MDE_FILE, mdes)
    console = Console()
    if not console.is_terminal:  # a file or a pipe: no 80-column wrap of the numbers
        console = Console(width=160)
    console.print(_table(rows))
    if mde:
        console.print(_mde_table(mdes))
    print(f"written: {', '.join(str(path) for path in written)}")
