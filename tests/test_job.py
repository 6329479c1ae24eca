"""The workflow scripts' one preamble: log, logging format and torch threads."""

import logging
import sys
from types import SimpleNamespace

import pytest
import torch

from resnet_scaling.job import start_job


@pytest.fixture
def restore_stderr_and_threads():
    stderr, threads = sys.stderr, torch.get_num_threads()
    handlers = list(logging.getLogger().handlers)
    yield
    if sys.stderr is not stderr:
        sys.stderr.close()
    sys.stderr = stderr
    torch.set_num_threads(threads)
    logging.basicConfig(handlers=handlers, force=True)


def test_stderr_and_logging_reach_the_rule_log_and_torch_gets_the_rule_threads(tmp_path, restore_stderr_and_threads):
    log = tmp_path / "job.log"
    log.write_text("an earlier attempt\n")
    threads = 1 if torch.get_num_threads() != 1 else 2
    start_job(SimpleNamespace(log=[str(log)], threads=threads), log_mode="a")
    print("to stderr", file=sys.stderr)
    logging.info("to logging")
    sys.stderr.flush()
    text = log.read_text()
    assert text.startswith("an earlier attempt\n")  # "a" keeps an interrupted attempt's log
    assert "to stderr" in text and "to logging" in text
    assert torch.get_num_threads() == threads


def test_a_fresh_log_and_a_bad_mode(tmp_path, restore_stderr_and_threads):
    log = tmp_path / "job.log"
    log.write_text("stale\n")
    start_job(SimpleNamespace(log=[str(log)], threads=1))
    sys.stderr.flush()
    assert "stale" not in log.read_text()
    with pytest.raises(ValueError, match="log_mode"):
        start_job(SimpleNamespace(log=[str(log)], threads=1), log_mode="x")


def test_every_workflow_script_uses_the_one_preamble():
    from pathlib import Path

    scripts = sorted((Path(__file__).parents[1] / "workflow" / "scripts").glob("*.py"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        assert "start_job(snakemake" in text, script.name
        assert "job_log(" not in text and "basicConfig" not in text and "noqa: E402" not in text, script.name
