"""Options both speed benchmarks share: where the result goes and how wide the job runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def add_job_options(parser: argparse.ArgumentParser, result_name: str) -> None:
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / result_name, help="result JSON"
    )
    parser.add_argument(
        "--parallelism",
        type=int,
        default=os.cpu_count() or 1,
        help="LAMBDA_SPEED_PARALLELISM of the job (default: this machine's cores, as a deployment sizes it)",
    )
