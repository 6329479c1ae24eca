"""The one preamble of every workflow script: its log, its logging format and its threads.

A script imports what it needs, then calls ``start_job(snakemake)``: from there on its
standard error (warnings, tracebacks, progress bars) and its ``logging`` records go to the
rule's log, and torch, where the script uses it, runs on the threads the rule was given.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from resnet_scaling.io import job_log

LOG_FORMAT = "%(asctime)s %(message)s"


def start_job(snakemake: Any, *, log_mode: str = "w") -> None:
    """Send standard error and logging to ``snakemake.log[0]`` and give torch the rule's threads.

    ``log_mode`` "a" keeps what an interrupted attempt logged (training jobs resume, and
    their log says so); "w" starts the log afresh.
    """
    if log_mode not in ("w", "a"):
        raise ValueError(f"log_mode must be 'w' or 'a', not {log_mode!r}")
    sys.stderr = job_log(snakemake.log[0], log_mode)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT, force=True)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(snakemake.threads))
