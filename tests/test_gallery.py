"""A gallery of a finished run: figures, small tables, the run's cost and its pedigree; refusals
of incomplete, mixed or foreign runs before anything is written; all-or-nothing replacement."""

import json
import os

import pandas as pd
import pytest

from resnet_scaling.gallery import export_gallery, main, time_report
from resnet_scaling.pedigree import RUN_RECORD, Refused, _record_path

pytestmark = pytest.mark.workflow

TIME_V = """\tCommand being timed: "snakemake --cores 2"
\tUser time (seconds): 100.50
\tSystem time (seconds): 10.25
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03
\tMaximum resident set size (kbytes): 2048000
"""


def test_gallery_of_the_smoke_run(smoke_run, tmp_path):
    (tmp_path / "time.txt").write_text(TIME_V)
    written = export_gallery(smoke_run, tmp_path / "gallery", [tmp_path / "time.txt"])
    names = {p.name for p in written}
    assert {"exponents.csv", "regimes.csv", "scorecard.md", "scaling_robustness.csv", "cost.csv", "cost.md",
            "training.csv"} <= names
    assert len(pd.read_csv(tmp_path / "gallery" / "training.csv")) == 2 * 4 * 2  # experiments x depths x seeds
    assert "scaling_max_norm.png" in names and "scaling_max_norm.pdf" in names
    cost = pd.read_csv(tmp_path / "gallery" / "cost.csv")
    train = cost.set_index("rule").loc["train"]
    assert train["jobs"] == 8 and train["cpu_s"] > 0 and train["max_rss_mb"] > 0
    assert "wall 62.0 min, CPU 1.8 min, peak memory of one process 2000 MB" in (tmp_path / "gallery" / "cost.md").read_text()
    record = json.loads((tmp_path / "gallery" / "provenance.json").read_text())
    assert record["config"]["files"] == ["config/smoke.yaml"] and len(record["config"]["digest"]) == 16
    assert len(record["code"]["digests"]["train"]) == 16 and record["run"]
    assert set(record["files"]) == names


def test_time_report_reads_gnu_time(tmp_path):
    (tmp_path / "t.txt").write_text(TIME_V)
    assert time_report(tmp_path / "t.txt") == {"wall_s": 3723.0, "cpu_s": 110.75, "max_rss_mb": 2000.0}



# -- fake run folders: what a run of the workflow leaves (run.json, Snakemake's job records) --

TRAIN_CODE, ANALYSIS_CODE = "0123456789abcdef", "fedcba9876543210"
OUTPUTS = {  # output -> rule
    "results/train/exp/depth_4.npz": "train",
    "results/train/exp/depth_8.npz": "train",
    "results/exponents.csv": "scaling_exponents",
    "results/scaling/exp/training.csv": "scaling_statistics",
    "figures/scaling_max_norm.png": "scaling_figures",
    "figures/scaling_max_norm.pdf": "scaling_figures",
}


def _fake_run(path, *, config=("config/smoke.yaml",), digest="c0ffee0000000000", code=None, made_by=None,
              finished=True, drop=()):
    """A complete run folder as the workflow leaves it. ``code``: rule -> code digest the run's last
    invocation ran; ``made_by``: output -> the code digest its job record carries (default: its
    rule's); ``finished``: whether the last invocation finished; ``drop``: outputs left missing."""
    code = {"train": TRAIN_CODE, "scaling_exponents": ANALYSIS_CODE, "scaling_statistics": ANALYSIS_CODE,
            "scaling_figures": ANALYSIS_CODE, **(code or {})}
    for output, rule in OUTPUTS.items():
        target = path / output
        target.parent.mkdir(parents=True, exist_ok=True)
        if output.endswith("training.csv"):
            pd.DataFrame([{"experiment": "exp", "depth": d, "seed": 0, "status": "converged", "epochs": 3,
                           "stop_reason": "", "train_loss": 1e-3} for d in (4, 8)]).to_csv(target, index=False)
        else:
            target.write_text(f"{output} of {digest}\n")
        record = _record_path(path / ".snakemake" / "metadata", output)
        record.parent.mkdir(parents=True, exist_ok=True)
        made = (made_by or {}).get(output, code[rule])
        record.write_text(json.dumps({"rule": rule, "params": [repr(made), "{'seeds': 2}", "3"], "incomplete": False}))
    for output in drop:
        (path / output).unlink()
    bench = path / "benchmarks" / "output" / "train" / "exp"
    bench.mkdir(parents=True)
    (bench / "depth_4.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n2.5\t0:00:02\t300.0\t2.0\n")
    (path / RUN_RECORD).write_text(json.dumps({
        "configfiles": list(config), "config_values": [], "config_digest": digest, "commit": "ab" * 20,
        "dirty": False, "code": code, "started": "2026-01-01T10:00:00+0000",
        "finished": "2026-01-01T11:00:00+0000" if finished else None, "targets": {"all": sorted(OUTPUTS)}}))
    return path


def _snapshot(folder):
    """Every file under ``folder`` with its bytes, and the entries beside it (no leftovers)."""
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return files, sorted(p.name for p in folder.parent.iterdir())


@pytest.fixture
def gallery(tmp_path):
    """A gallery made by a complete run, with another gallery inside it (as figures/paper/ in figures/)."""
    dest = tmp_path / "gallery"
    assert main([str(_fake_run(tmp_path / "first")), str(dest)]) == 0
    (dest / "paper").mkdir()
    (dest / "paper" / "exponents.csv").write_text("the paper gallery\n")
    return dest


def _refused(run, dest, capsys, *args):
    """Export ``run`` into ``dest``: it must exit non-zero with one sentence and leave ``dest`` as it was."""
    before = _snapshot(dest)
    assert main([str(run), str(dest), *args]) == 1
    message = capsys.readouterr().err.strip()
    assert message.startswith("gallery: ") and "\n" not in message
    assert _snapshot(dest) == before
    return message


def test_the_gallery_records_the_config_code_and_run_that_made_it(gallery, tmp_path):
    record = json.loads((gallery / "provenance.json").read_text())
    assert record["run"].endswith("first")
    assert record["config"] == {"files": ["config/smoke.yaml"], "values": [], "digest": "c0ffee0000000000"}
    assert record["code"] == {"commit": "ab" * 20, "modified": False,
                              "digests": {"scaling_exponents": ANALYSIS_CODE, "scaling_figures": ANALYSIS_CODE,
                                          "scaling_statistics": ANALYSIS_CODE, "train": TRAIN_CODE}}
    assert {"exponents.csv", "training.csv", "cost.csv", "cost.md", "scaling_max_norm.png", "scaling_max_norm.pdf",
            "provenance.json"} == set(record["files"]) == {p.name for p in gallery.iterdir() if p.is_file()}


def test_a_run_without_its_record_is_refused(tmp_path, capsys):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "scaling_max_norm.png").write_bytes(b"png")
    with pytest.raises(Refused, match="has no run.json"):
        export_gallery(tmp_path, tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_an_incomplete_run_is_refused(gallery, tmp_path, capsys):
    """A run killed at some of its jobs: an output of the final target missing, the last
    invocation unfinished, or an output left by a job that did not finish."""
    run = _fake_run(tmp_path / "killed", drop=["results/train/exp/depth_8.npz"])
    assert "incomplete: 1 of the 6 files of its final target are missing (results/train/exp/depth_8.npz)" in (
        _refused(run, gallery, capsys))
    run = _fake_run(tmp_path / "running", finished=False)
    assert "incomplete: its last invocation (started 2026-01-01T10:00:00+0000) has not finished" in (
        _refused(run, gallery, capsys))
    run = _fake_run(tmp_path / "marked")
    marker = _record_path(run / ".snakemake" / "incomplete", "results/exponents.csv")
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    assert "1 outputs were left by jobs that did not finish (results/exponents.csv)" in _refused(run, gallery, capsys)


def test_a_run_of_another_config_is_refused(gallery, tmp_path, capsys):
    run = _fake_run(tmp_path / "paper", config=("config/paper.yaml", "config/overlays/fc_cpu.yaml"))
    message = _refused(run, gallery, capsys)
    assert "is a run of another config than" in message and "config/paper.yaml" in message
    run = _fake_run(tmp_path / "edited", digest="0000000000c0ffee")
    assert "other values of the config" in _refused(run, gallery, capsys)
    assert main([str(run), str(gallery), "--replace"]) == 0  # on purpose: the gallery is replaced whole
    assert json.loads((gallery / "provenance.json").read_text())["config"]["digest"] == "0000000000c0ffee"


def test_a_run_made_by_other_code_is_refused(gallery, tmp_path, capsys):
    run = _fake_run(tmp_path / "newer", code={"scaling_figures": "1111111111111111"})
    message = _refused(run, gallery, capsys)
    assert "was made by other code than" in message and "scaling_figures" in message
    assert main([str(run), str(gallery), "--replace"]) == 0
    assert json.loads((gallery / "provenance.json").read_text())["code"]["digests"]["scaling_figures"] == "1" * 16


def test_a_run_made_by_more_than_one_code_version_is_refused(gallery, tmp_path, capsys):
    """Training resumed after a change of the code: one rule's outputs carry two code digests,
    or an output was made by other code than the run's last invocation ran."""
    run = _fake_run(tmp_path / "resumed", made_by={"results/train/exp/depth_8.npz": "2222222222222222"})
    message = _refused(run, gallery, capsys)
    assert "made by more than one code version: the outputs of rule train carry the code digests" in message
    assert main([str(run), str(tmp_path / "new"), "--replace"]) == 1  # never, not even into a new gallery
    assert not (tmp_path / "new").exists() and "more than one code version" in capsys.readouterr().err
    run = _fake_run(tmp_path / "stale", made_by={"results/exponents.csv": "3333333333333333"})
    assert "results/exponents.csv of rule scaling_exponents was made by code 3333333333333333, the run's last " \
           "invocation ran code fedcba9876543210" in _refused(run, gallery, capsys)


def test_a_gallery_without_provenance_is_replaced_only_on_purpose(tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    (old / "exponents.csv").write_text("made by who knows\n")
    run = _fake_run(tmp_path / "run")
    assert "records no provenance.json" in _refused(run, old, capsys)
    assert main([str(run), str(old), "--replace"]) == 0


def test_the_new_gallery_replaces_the_old_one_whole_and_keeps_the_galleries_inside_it(gallery, tmp_path):
    (gallery / "scaling_paths_gone_experiment.png").write_bytes(b"stale")
    inner = (gallery / "paper" / "exponents.csv").stat()
    assert main([str(_fake_run(tmp_path / "again")), str(gallery)]) == 0
    assert not (gallery / "scaling_paths_gone_experiment.png").exists()  # not made by this run: gone
    assert (gallery / "exponents.csv").read_text() == "results/exponents.csv of c0ffee0000000000\n"
    kept = (gallery / "paper" / "exponents.csv").stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (inner.st_ino, inner.st_mtime_ns)  # the same file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "first", "gallery"]  # no leftovers


def test_a_failure_while_writing_leaves_the_old_gallery_byte_identical(gallery, tmp_path, monkeypatch):
    import shutil

    import resnet_scaling.gallery as module

    run = _fake_run(tmp_path / "second")
    for figure in (run / "figures").iterdir():  # a new drawing of the same figures
        figure.write_bytes(b"redrawn " + figure.read_bytes())
    before = _snapshot(gallery)
    copy, calls = shutil.copy2, []

    def failing_copy(source, target, **kwargs):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return copy(source, target, **kwargs)

    monkeypatch.setattr(module.shutil, "copy2", failing_copy)
    with pytest.raises(OSError, match="No space left"):
        export_gallery(run, gallery)
    assert len(calls) == 3 and _snapshot(gallery) == before
    monkeypatch.setattr(module.shutil, "copy2", copy)

    def failing_rename(source, target, rename=os.rename):  # the swap itself fails: the old gallery is put back
        if str(target) == str(gallery) and ".new-" in str(source):
            raise OSError(5, "Input/output error")
        return rename(source, target)

    monkeypatch.setattr(module.os, "rename", failing_rename)
    with pytest.raises(OSError, match="Input/output"):
        export_gallery(run, gallery)
    assert _snapshot(gallery) == before


def test_carry_is_gone(tmp_path):
    with pytest.raises(SystemExit):
        main([str(tmp_path), str(tmp_path / "g"), "--carry", "relu_multi_digits"])


def test_several_invocations_each_get_their_cost_line(tmp_path):
    """Training and analysis run as two invocations: each GNU time report is summarised under its label."""
    run = _fake_run(tmp_path / "run")
    (tmp_path / "train.txt").write_text(TIME_V)
    (tmp_path / "analysis.txt").write_text(TIME_V.replace("1:02:03", "10:00").replace("100.50", "500.00"))
    assert main([str(run), str(tmp_path / "g"), "--time-report", str(tmp_path / "train.txt"), "--time-label", "Training",
                 "--time-report", str(tmp_path / "analysis.txt"), "--time-label", "Analysis"]) == 0
    text = (tmp_path / "g" / "cost.md").read_text()
    assert "| train | 1 | 2 | 2 | 300 |" in text
    assert "Training (GNU time): wall 62.0 min, CPU 1.8 min" in text
    assert "Analysis (GNU time): wall 10.0 min, CPU 8.5 min" in text
    with pytest.raises(ValueError, match="2 time reports but 1 labels"):  # before anything is written
        export_gallery(run, tmp_path / "h", [tmp_path / "train.txt", tmp_path / "analysis.txt"], ["Training"])
    assert not (tmp_path / "h").exists()


def test_an_opt_in_study_is_exported_by_its_own_target(tmp_path, capsys):
    run = _fake_run(tmp_path / "study")
    record = json.loads((run / RUN_RECORD).read_text())
    record["targets"] = {"transfer": record["targets"]["all"]}
    (run / RUN_RECORD).write_text(json.dumps(record))
    (run / "results" / "transfer").mkdir(parents=True)
    (run / "results" / "transfer" / "transfer.csv").write_text(
        "parametrisation,block,dataset,slope,ci_low,ci_high,n_depths,note,transfer,regime,pathwise\n"
        "completep,one-matrix,nonlinear,0.1,0.0,0.2,7,,transfers,ODE,ODE\n")
    (run / "results" / "transfer" / "cost.txt").write_text("cost: 1 CPU-minute\n")
    dest = tmp_path / "transfer"
    assert main([str(run), str(dest)]) == 1
    assert "built the final target 'all'" in capsys.readouterr().err
    assert main([str(run), str(dest), "--target", "transfer"]) == 0
    assert (dest / "transfer.csv").read_text().startswith("parametrisation") and (dest / "cost.txt").exists()
    assert "| completep (one-matrix, nonlinear) | all | the optimal learning rate transfers across depth |" in (
        dest / "findings.md").read_text()
