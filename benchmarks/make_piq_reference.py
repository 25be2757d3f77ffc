"""Write tests/metrics/reference/piq_reference.json: piq 0.8.0's own HaarPSI and VSI on the pairs of
tests/metrics/reference/piq_cases.py, float64.

A developer's tool, not a test: it needs piq's wheel, fetched once by hand (benchmarks/piq_wheel.py
says how); the tests read only the JSON it writes. Run from the repository root:

    PYTHONPATH=src python benchmarks/make_piq_reference.py /path/to/unpacked-piq

piq's code runs unchanged (``piq.haarpsi`` / ``piq.vsi`` with ``reduction="none"`` and
``data_range`` = the case's scale); taskloss is used only for the sample images.
"""

import argparse
import json
import platform
import sys
import warnings
from pathlib import Path

import torch

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "metrics" / "reference"
sys.path[:0] = [str(REFERENCE), str(Path(__file__).resolve().parent)]
from piq_cases import CASES, pair  # noqa: E402

from piq_wheel import PIQ_VERSION, load_piq  # noqa: E402

OUTPUT = REFERENCE / "piq_reference.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("piq_folder", help="the folder holding the unpacked wheel's piq/")
    args = parser.parse_args()
    piq = load_piq(args.piq_folder)
    values = {}
    for case in CASES:
        pred, target = pair(case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # piq warns that VSI repeats grayscale to RGB
            values[case.name] = {
                "haarpsi": piq.haarpsi(pred, target, data_range=case.scale, reduction="none").item(),
                "haarpsi_no_subsample": piq.haarpsi(pred, target, data_range=case.scale, reduction="none",
                                                    subsample=False).item(),
                "vsi": piq.vsi(pred, target, data_range=case.scale, reduction="none").item(),
                "shape": list(target.shape),
            }
        print(case.name, values[case.name])
    record = {"piq": PIQ_VERSION, "torch": torch.__version__, "python": platform.python_version(),
              "dtype": "float64", "values": values}
    OUTPUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
