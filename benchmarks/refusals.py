"""How fast hostile inputs are refused: a second process into a locked output folder, a YAML alias bomb.

For each case the command runs as a user runs it (``taskloss ...`` in a fresh interpreter) and, to
separate the refusal from Python's and torch's start-up, ``taskloss --help`` is timed in the same
run (the same imports, no work): the refusal's own cost is the difference. The in-process time of
the refusal (``main()`` called after the imports) is measured too.

Cases: ``taskloss study run`` into a folder whose lock a sleeping process holds; ``taskloss study
plan`` of the 1 KB billion-laughs file (9 levels of 9 aliases, the issue's bomb).

Run: ``python benchmarks/refusals.py [--repeat 3]``.
"""

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from common import machine

HOLDER = ("import sys, time; from pathlib import Path; from taskloss.locks import locked_folder\n"
          "with locked_folder(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)\n")
STUDY = ("name: s\ndata: {path: pairs, size: 16}\nnetworks: {unet: {name: unet, options: {widths: [4, 8]}}}\n"
         "losses: {l1: {l1: 1.0}}\n")


def bomb() -> str:
    """The billion-laughs file: a0 holds 9 strings, each a_k 9 aliases of a_(k-1), 9 levels."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 9)]
    lines.append(f"name: [{', '.join(['*a8'] * 9)}]")
    return "\n".join(lines) + "\n"


def wall(args: list[str], cwd: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", "from taskloss.cli import main; main()", *args], cwd=cwd,
                            capture_output=True, text=True)
    return time.perf_counter() - start, result.returncode, result.stderr.strip()


def in_process(args: list[str], cwd: Path) -> float:
    from taskloss.cli import main

    start = time.perf_counter()
    with contextlib.chdir(cwd), mock.patch.object(sys, "argv", ["taskloss", *args]), \
            contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.suppress(SystemExit):
        main()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    print(machine())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        (cwd / "study.yaml").write_text(STUDY)
        (cwd / "bomb.yaml").write_text(bomb())
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(cwd / "out")], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            cases = {"--help (start-up only)": ["--help"],
                     "study run into a locked --out": ["study", "run", "study.yaml", "--out", "out"],
                     f"study plan of the alias bomb ({len(bomb())} bytes)": ["study", "plan", "bomb.yaml"]}
            print(f"| case | exit | wall s, fresh process (median of {repeat}) | minus start-up | in process s |")
            print("|---|---:|---:|---:|---:|")
            start_up = None
            for name, args in cases.items():
                runs = [wall(args, cwd) for _ in range(repeat)]
                seconds = statistics.median(r[0] for r in runs)
                start_up = seconds if start_up is None else start_up
                inside = statistics.median(in_process(args, cwd) for _ in range(repeat))
                print(f"| {name} | {runs[0][1]} | {seconds:.2f} | {seconds - start_up:+.2f} | {inside:.4f} |")
                if runs[0][1] == 2:
                    print(f"|   {runs[0][2][:110]}... | | | | |")
        finally:
            holder.kill()
            holder.wait()


if __name__ == "__main__":
    main()
