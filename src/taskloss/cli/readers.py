"""``taskloss readers {create,serve,relink,mos}``: a blinded reader study that yields the MOS column."""

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from taskloss.cli.app import app
from taskloss.errors import InputError
from taskloss.locks import locked_folder
from taskloss.readers import (
    MosReport,
    Store,
    admin_link,
    create_study,
    make_server,
    parse_scale,
    reader_link,
    reissue_token,
    score_study,
    write_details,
    write_mos_csv,
)
from taskloss.readers.scoring import MOS_FILE
from taskloss.readers.study import DEFAULT_RUBRIC

readers_app = typer.Typer(
    help="Blinded reader study: create it from a study's results, serve the rating page, score MOS.",
    no_args_is_help=True,
)
app.add_typer(readers_app, name="readers")

DEFAULT_BASE_URL = "http://127.0.0.1:8080"


@readers_app.command()
def create(
    study_dir: Annotated[Path, typer.Argument(help="New folder for the study.")],
    results_dir: Annotated[Path, typer.Option("--from", help="Results folder of `taskloss study`.")],
    cases: Annotated[int | None, typer.Option("--cases", help="Test cases to include, chosen at "
                                              "random (seeded); default all.", min=1)] = None,
    readers: Annotated[str, typer.Option("--readers", help="Comma-separated reader names.")]
    = "reader-1,reader-2,reader-3",
    scale: Annotated[str, typer.Option("--scale", help="Likert scale LOW-HIGH (single digits).")] = "1-5",
    rubric: Annotated[str, typer.Option("--rubric", help="Rating instructions shown to readers.")]
    = DEFAULT_RUBRIC,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the case choice and reading "
                                             "orders; default random, recorded in the study.",
                                             min=0)] = None,
    base_url: Annotated[str, typer.Option("--base-url", help="Address the study will be served at, "
                                          "for the printed links.")] = DEFAULT_BASE_URL,
) -> None:
    """Create a study: anonymous images, a random order per reader, one secret link each."""
    # The study folder is renamed into place when complete, so its lock file lies beside it.
    with locked_folder(study_dir, "STUDY_DIR", inside=False):
        created = create_study(study_dir, results_dir, reader_names=readers.split(","), n_cases=cases,
                               scale=parse_scale(scale), rubric=rubric, seed=seed)
    print(f"created reader study {created.study_dir}: {len(created.case_ids)} cases x "
          f"{len(created.methods)} methods = {created.n_images} images per reader, scale {scale}")
    print("personal links (shown only now, stored hashed; send each reader only their own):")
    for name, token in created.reader_tokens.items():
        print(f"  {name}: {reader_link(base_url, token)}")
    print(f"  admin: {admin_link(base_url, created.admin_token)}")
    print(f"serve it with: taskloss readers serve {created.study_dir}")


@readers_app.command()
def serve(
    study_dir: Annotated[Path, typer.Argument(help="The study folder.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 opens it to "
                                      "the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port, 1-65535; 0 picks a free one.", min=0,
                                      max=65535)] = 8080,
) -> None:
    """Serve the rating pages until Ctrl-C or SIGTERM; every rating is stored at once."""
    logging.basicConfig(format="taskloss readers serve: %(levelname)s %(name)s: %(message)s")
    # Waitress warns whenever a request waits for a free worker thread. Short waits are normal
    # here: SQLite serialises the writes, each of which takes milliseconds.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    with Store.open(study_dir):  # a missing or unreadable study first, then the port
        pass
    try:
        server, urls = make_server(study_dir, host=host, port=port)
    except OSError as error:  # address in use, no permission for ports < 1024, an unknown host
        raise InputError(f"cannot listen on {host}:{port} ({error.strerror or error}); choose another "
                         "--port (0 picks a free one) or --host, or stop the program that uses it") from None
    with Store.open(study_dir) as store:
        progress = store.progress()
    rated = sum(p.rated for p in progress)
    total = sum(p.total for p in progress)
    print(f"serving reader study {study_dir} at {', '.join(urls)} ({rated} of {total} ratings stored)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("note: plain HTTP; on a shared network put it behind an HTTPS reverse proxy so the "
              "links' tokens travel encrypted", flush=True)
    print("readers open the personal links printed by `taskloss readers create`; Ctrl-C stops",
          flush=True)
    # kill, systemd and `docker stop` send SIGTERM: stop as on Ctrl-C (waitress ends its loop on
    # SystemExit and lets requests in flight finish).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.run()
    print("server stopped; every acknowledged rating is stored", flush=True)


@readers_app.command()
def relink(
    study_dir: Annotated[Path, typer.Argument(help="The study folder.")],
    reader: Annotated[str | None, typer.Option("--reader", help="Reader whose link was lost.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Replace the admin link instead.")] = False,
    base_url: Annotated[str, typer.Option("--base-url", help="Address the study is served at.")]
    = DEFAULT_BASE_URL,
) -> None:
    """Replace a lost link: a new secret token for one reader (or the admin); the old link stops."""
    if (reader is None) == (not admin):
        raise InputError("pass either --reader NAME or --admin: which link should be replaced?")
    token = reissue_token(study_dir, reader)
    link = admin_link(base_url, token) if admin else reader_link(base_url, token)
    print(f"new link for {reader or 'the admin'} (shown only now; the old link no longer works):")
    print(f"  {link}")


@readers_app.command()
def mos(study_dir: Annotated[Path, typer.Argument(help="The study folder.")]) -> None:
    """MOS +- sd per method, inter-reader agreement and paired tests; writes mos.csv."""
    with Store.open(study_dir) as store:
        report = score_study(store)
        results_dir = store.info().results_dir
    _print_report(report)
    write_mos_csv(report, study_dir / MOS_FILE)
    written = [study_dir / MOS_FILE, *write_details(report, study_dir)]
    if results_dir.is_dir():
        write_mos_csv(report, results_dir / MOS_FILE)
        written.append(results_dir / MOS_FILE)
    else:
        print(f"warning: the study's results folder {results_dir} no longer exists; its {MOS_FILE} "
              "was not written")
    print("wrote " + ", ".join(str(p) for p in written))


def _print_report(report: MosReport) -> None:
    console = Console()
    if report.n_ratings < report.n_expected:
        console.print(f"[yellow]partial study: {report.n_ratings} of {report.n_expected} ratings "
                      "stored[/yellow]")
    table = Table(title=f"Mean opinion score ({report.n_ratings} ratings)")
    for column in ("method", "MOS ± sd", "ratings", "readers"):
        table.add_column(column)
    for row in report.methods:
        value = "–" if np.isnan(row.mos) else f"{row.mos:.2f} ± {row.sd:.2f}"
        table.add_row(row.label, value, str(row.n_ratings), str(row.n_readers))
    console.print(table)
    if report.agreement is None:
        console.print("agreement: needs at least 2 readers and 2 images rated by all of them")
    else:
        icc_result = report.agreement.icc
        console.print(f"agreement on {icc_result.n_items} images x {icc_result.n_readers} readers: "
                      f"ICC(2,1) = {icc_result.single:.3f}, ICC(2,k) = {icc_result.average:.3f} "
                      f"(two-way random, absolute agreement), Fleiss' kappa = "
                      f"{report.agreement.fleiss_kappa:.3f}")
    if report.comparisons:
        tests = Table(title="Paired Wilcoxon signed-rank tests on per-case MOS")
        for column in ("A", "B", "cases", "median A−B", "p", "p (Holm)"):
            tests.add_column(column)
        labels = {row.method: row.label for row in report.methods}
        for c in report.comparisons:
            tests.add_row(labels[c.method_a], labels[c.method_b], str(c.test.n),
                          f"{c.test.median_difference:+.2f}", f"{c.test.p_value:.3g}", f"{c.p_holm:.3g}")
        console.print(tests)
