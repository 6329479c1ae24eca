"""Bad config gets one clear error naming the key or value, before any job runs."""

import copy
import re

import pytest
import yaml

from resnet_scaling.config import ConfigError, check_config, depth_grid, network_width
from workflow_utils import ROOT, copy_workflow, run_snakemake

SMOKE = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def test_depth_grid_is_the_original_geometric_grid():
    # docs/references.md: unique(floor(1.2**n)) — 3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 22, ...
    assert depth_grid({"min": 3, "max": 22, "base": 1.2}) == [3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 22]
    assert depth_grid({"min": 8, "max": 1024, "base": 2}) == [8, 16, 32, 64, 128, 256, 512, 1024]
    assert depth_grid([64, 8, 8, 16]) == [8, 16, 64]


def _bad(mutate):
    cfg = copy.deepcopy(SMOKE)
    mutate(cfg)
    return cfg


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(dataset="cifar"),
         "experiments.tanh_shared_synthetic.dataset: 'cifar'"),
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(depths={"min": 64, "max": 8, "base": 2}),
         "experiments.tanh_shared_synthetic.depths: min 64"),
        (lambda c: c["datasets"].update(m={"kind": "mnist", "n_train": 4, "n_test": 4, "path": "/nonexistent/mnist"}),
         "datasets.m.path: MNIST folder '/nonexistent/mnist'"),
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(shuffle="original-defect", batch_size=30),
         "experiments.tanh_shared_synthetic.batch_size: 30"),
        (lambda c: [e.update(enabled=False) for e in c["experiments"].values()], "no experiment is enabled"),
    ],
)
def test_semantic_errors_name_the_key(mutate, message):
    with pytest.raises(ConfigError) as info:
        check_config(_bad(mutate))
    assert message in str(info.value)


def test_smoke_config_passes():
    check_config(copy.deepcopy(SMOKE))


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(activation="sigmoid"), "sigmoid"),
        (lambda c: c["experiments"]["relu_multi_synthetic"].update(learning_rate=0.1), "learning_rate"),
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(dataset="cifar"), "cifar"),
    ],
)
def test_workflow_rejects_bad_config_before_any_job(tmp_path, mutate, expected):
    work = copy_workflow(tmp_path / "wf")
    bad = work / "config" / "bad.yaml"
    bad.write_text(yaml.safe_dump(_bad(mutate)))
    proc = run_snakemake(work, "--cores", "1", "--configfile", str(bad))
    assert proc.returncode != 0
    assert expected in proc.stderr + proc.stdout
    assert not (work / "results").exists()


# -- schema errors in one sentence, semantic refusals, analysis selections ---------------

from resnet_scaling.config import (  # noqa: E402
    MIN_FIT_DEPTHS,
    analysis_selections,
    schema_error,
    with_schema_defaults,
)

DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _bad_default(mutate):
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg)
    return cfg


SCHEMA_CASES = [
    (lambda c: c.update(sclaing=c.pop("scaling")), "config: unknown key `sclaing`; did you mean `scaling`?"),
    (lambda c: c["experiments"]["tanh_shared_synthetic"]["depths"].update(base=1.0),
     "experiments.tanh_shared_synthetic.depths.base: 1.0 must be > 1"),
    (lambda c: c["experiments"]["tanh_shared_synthetic"].update(activation="sigmoid"),
     "experiments.tanh_shared_synthetic.activation: 'sigmoid' is not allowed; choose one of tanh, relu, identity, "
     "softplus0, gelu"),
    (lambda c: c["experiments"]["tanh_shared_synthetic"].update(init_depth_profile="constant"),
     "experiments.tanh_shared_synthetic.init_depth_profile: 'constant' is not allowed; choose one of iid, smooth, "
     "brownian, tied"),
    (lambda c: c["limits"]["fit"].update(n_depth=3), "limits.fit: unknown key `n_depth`; did you mean `n_depths`?"),
    (lambda c: c["fbsde"]["convergence"]["cases"][0].update(case="odd"),
     "fbsde.convergence.cases[0].case: 'odd' is not allowed"),
    (lambda c: c["scaling"]["fit"]["min_depth_by_statistic"].update(x=-1),
     "scaling.fit.min_depth_by_statistic.x: -1 must be >= 1"),
    (lambda c: c["experiments"]["tanh_shared_synthetic"].update(depths="many"),
     "experiments.tanh_shared_synthetic.depths: 'many' has none of the allowed forms"),
]


@pytest.mark.parametrize("mutate,first_line", SCHEMA_CASES)
def test_schema_errors_are_one_line_naming_the_key(mutate, first_line):
    message = schema_error(_bad_default(mutate))
    assert message.startswith(first_line)
    assert "\n" not in message and len(message) < 400


SEMANTIC_CASES = [
    (lambda c: c["experiments"]["tanh_shared_synthetic"].update(depths=[8, 16]),
     "experiments.tanh_shared_synthetic.depths: the grid [8, 16] has 2 depth(s)"),
    (lambda c: c["scaling"]["fit"].update(min_depth=2048), "scaling.fit.min_depth / max_depth: selects 0 depth(s)"),
    (lambda c: c["experiments"]["relu_multi_digits"].update(batch_size=4096),
     "experiments.relu_multi_digits.batch_size: 4096 is larger than n_train = 1024"),
    # an initialisation that does not fit the block: the one-matrix block has no V to set to zero
    (lambda c: c["experiments"]["tanh_diffusive_synthetic"].update(v_init="zero"),
     "experiments.tanh_diffusive_synthetic.v_init: 'zero' does not fit the one-matrix block; choose one of law"),
    (lambda c: c["limits"]["fit"].update(n_depths=40), "limits.fit.n_depths: asks for more depths than"),
    (lambda c: c["scaling"]["paths"].update(n_depths=16), "scaling.paths.n_depths: asks for more depths than"),
    (lambda c: c["scaling"]["decomposition"].update(min_depth=5000), "scaling.decomposition.min_depth / n_cells: selects 0"),
    (lambda c: c["fbsde"]["trained"].update(min_fit_depth=1000), "fbsde.trained.min_fit_depth: selects 1 depth(s) [1024]"),
    (lambda c: c["scaling"]["fit"]["min_depth_by_statistic"].update(detrended_cumsum=1000),
     "scaling.fit.min_depth_by_statistic.detrended_cumsum: selects 1 depth(s)"),
]


@pytest.mark.parametrize("mutate,first_line", SEMANTIC_CASES)
def test_meaningless_values_are_refused_naming_the_key(mutate, first_line):
    with pytest.raises(ConfigError) as info:
        check_config(_bad_default(mutate))
    assert str(info.value).startswith(first_line), str(info.value)


#: What the comments of the shipped configs say each selection resolves to: (count, first, last).
DOCUMENTED_SELECTIONS = {
    "config.yaml": {"scaling.fit": (13, 16, 1024), "scaling.fit.min_depth_by_statistic.detrended_cumsum": (7, 128, 1024),
                    "scaling.decomposition": (5, 256, 1024), "scaling.paths": (4, 362, 1024),
                    "limits.fit": (3, 512, 1024), "fbsde.trained": (13, 16, 1024)},
    "paper.yaml": {"scaling.fit": (38, 10, 9100), "scaling.fit.min_depth_by_statistic.detrended_cumsum": (21, 237, 9100),
                   "scaling.decomposition": (7, 3047, 9100), "scaling.paths": (4, 5266, 9100),
                   "limits.fit": (3, 6319, 9100), "fbsde.trained": (25, 114, 9100)},
    "smoke.yaml": {"scaling.fit": (4, 4, 32), "scaling.fit.min_depth_by_statistic.detrended_cumsum": (3, 8, 32),
                   "scaling.decomposition": (2, 16, 32), "scaling.paths": (2, 16, 32),
                   "limits.fit": (2, 16, 32), "fbsde.trained": (4, 4, 32)},
}
#: Experiments on a grid of their own, with what their comments say their selections resolve to.
DOCUMENTED_EXPERIMENT_SELECTIONS = {
    ("config.yaml", "tanh_diffusive_synthetic"): {
        "scaling.fit": (15, 16, 2048), "scaling.fit.min_depth_by_statistic.detrended_cumsum": (9, 128, 2048),
        "scaling.decomposition": (7, 256, 2048), "scaling.paths": (4, 724, 2048), "limits.fit": (3, 1024, 2048),
        "fbsde.trained": (15, 16, 2048)},
    ("config.yaml", "tanh_shared_nonlinear"): {
        "scaling.fit": (6, 16, 256), "scaling.fit.min_depth_by_statistic.detrended_cumsum": (3, 128, 256),
        "scaling.decomposition": (1, 256, 256), "scaling.paths": (4, 64, 256), "limits.fit": (3, 128, 256),
        "fbsde.trained": (6, 16, 256)},
}
#: What the comment of each such experiment says: its fit range and its limit-fit depths.
DOCUMENTED_EXPERIMENT_COMMENTS = {
    ("config.yaml", "tanh_diffusive_synthetic"): ("15 depths, 16..2048", "1024, 1448, 2048"),
    ("config.yaml", "tanh_shared_nonlinear"): ("6 depths, 16..256", "128, 181, 256"),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED_SELECTIONS))
def test_every_selection_of_every_shipped_config_is_what_its_comment_says(name):
    text = (ROOT / "config" / name).read_text()
    cfg = with_schema_defaults(yaml.safe_load(text))
    check_config(cfg)
    for exp, spec in cfg["experiments"].items():
        if not spec.get("enabled", True):
            continue
        selections = analysis_selections(cfg, exp)
        documented = DOCUMENTED_EXPERIMENT_SELECTIONS.get((name, exp), DOCUMENTED_SELECTIONS[name])
        assert set(selections) == set(documented)
        for key, depths in selections.items():
            assert depths, (name, exp, key)
            assert (len(depths), depths[0], depths[-1]) == documented[key], (name, exp, key, depths)
    for (config_name, exp), phrases in DOCUMENTED_EXPERIMENT_COMMENTS.items():
        if config_name == name:  # its comment states its own counts and ranges
            assert all(phrase in text for phrase in phrases), (exp, phrases)
    # the comments of the non-smoke configs state these counts and ranges
    if name != "smoke.yaml":
        for key, (count, first, last) in DOCUMENTED_SELECTIONS[name].items():
            if key in ("scaling.fit", "scaling.fit.min_depth_by_statistic.detrended_cumsum", "scaling.decomposition"):
                assert f"{count} depths" in text and f"{first}..{last}" in text, (name, key)


@pytest.mark.parametrize("overlay", sorted(p.name for p in (ROOT / "config" / "overlays").glob("*.yaml")))
def test_every_overlay_keeps_the_selections_of_its_config(overlay):
    """An overlay given after the config its first line names (``--configfile config/X.yaml
    config/overlays/Y.yaml``, merged as Snakemake merges config files) gives a valid config
    whose every enabled experiment resolves that config's documented selections."""
    from snakemake.utils import update_config

    text = (ROOT / "config" / "overlays" / overlay).read_text()
    base = re.search(rf"--configfile config/(\w+\.yaml) config/overlays/{re.escape(overlay)}", text.splitlines()[0])
    assert base, f"{overlay}: its first line names no config it goes after"
    cfg = yaml.safe_load((ROOT / "config" / base.group(1)).read_text())
    update_config(cfg, yaml.safe_load(text))
    cfg = with_schema_defaults(cfg)
    check_config(cfg)
    enabled = [exp for exp, spec in cfg["experiments"].items() if spec.get("enabled", True)]
    assert enabled
    for exp in enabled:
        for key, depths in analysis_selections(cfg, exp).items():
            documented = DOCUMENTED_EXPERIMENT_SELECTIONS.get((base.group(1), exp), DOCUMENTED_SELECTIONS[base.group(1)])
            assert (len(depths), depths[0], depths[-1]) == documented[key], (overlay, exp, key)


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.parametrize("mutate,first_line", SCHEMA_CASES[:2] + SEMANTIC_CASES[:4])
def test_snakemake_refuses_bad_config_with_one_line_before_any_job(tmp_path, mutate, first_line):
    work = copy_workflow(tmp_path / "wf")
    bad = work / "config" / "bad.yaml"
    bad.write_text(yaml.safe_dump(_bad_default(mutate), allow_unicode=True))
    proc = run_snakemake(work, "-n", "--cores", "1", "--configfile", str(bad))
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("ConfigError in file"))
    assert lines[at + 1].startswith(first_line), out[-2000:]
    assert len(out) < 3000  # no schema dump
    assert not (work / "results").exists()


@pytest.mark.workflow
def test_config_overrides_apply_on_top_of_the_embedded_default(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    # the default's four experiments are all planned, not dropped by the override
    targets = [f"results/train/{exp}/depth_1024.npz" for exp in
               ("tanh_shared_synthetic", "relu_multi_synthetic", "tanh_shared_digits", "relu_multi_digits")]
    proc = run_snakemake(work, "-n", "--cores", "1", *targets, "--config", "seed=7")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "is extended by additional config" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_the_default_profile_is_loaded(tmp_path):
    """profiles/default sets keep-going: a failing job does not stop an independent one."""
    work = copy_workflow(tmp_path / "wf")
    cfg = copy.deepcopy(SMOKE)
    (work / "mnist").mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (work / "mnist" / name).write_bytes(b"not an IDX file")
    cfg["datasets"]["broken"] = {"kind": "mnist", "path": str(work / "mnist"), "n_train": 64, "n_test": 32}
    cfg["experiments"]["relu_multi_synthetic"]["dataset"] = "broken"
    (work / "config" / "broken.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    good = "results/train/tanh_shared_synthetic/depth_4.npz"
    proc = run_snakemake(work, good, "results/train/relu_multi_synthetic/depth_4.npz",
                         "--cores", "1", "--configfile", "config/broken.yaml")
    out = proc.stdout + proc.stderr
    assert "Using workflow specific profile profiles/default" in out
    assert proc.returncode != 0
    assert (work / good).exists(), "keep-going from the profile did not apply"
    assert "not an IDX file" in out or "mnist" in out.lower()  # show-failed-logs printed the failed job's log


def test_robustness_window_longer_than_the_fit_is_refused():
    cfg = _bad_default(lambda c: c["scaling"].update(robustness={"window_depths": 14}))
    with pytest.raises(ConfigError, match=r"^scaling.robustness.window_depths: 14 is more than the 13 depths"):
        check_config(cfg)


def test_section_settings_fill_the_schema_defaults_and_name_bad_keys():
    """The one accessor of library code: a partial section gets the schema's defaults, the
    caller's dict is left alone, and a bad key or value is one sentence naming it."""
    from resnet_scaling.config import section_schema, section_settings

    given = {"n_grid": 20}
    filled = section_settings("limits.fit", given)
    assert given == {"n_grid": 20} and filled["n_grid"] == 20
    schema_fit = section_schema("limits.fit")["properties"]
    assert all(filled[key] == spec["default"] for key, spec in schema_fit.items() if key != "n_grid" and "default" in spec)
    case = section_settings("fbsde.convergence.cases[]",
                            {"name": "n", "case": "neural_ode", "activation": "tanh", "depths": [4, 8, 16], "n_paths": 2})
    assert case["ref_factor"] == section_schema("fbsde.convergence.cases[]")["properties"]["ref_factor"]["default"]
    with pytest.raises(ConfigError, match=r"limits\.fit: unknown key `n_gird`; did you mean `n_grid`\?"):
        section_settings("limits.fit", {"n_gird": 3})
    with pytest.raises(ConfigError, match=r"limits\.fit\.n_grid: -1"):
        section_settings("limits.fit", {"n_grid": -1})
    with pytest.raises(KeyError, match="no section"):
        section_settings("limits.fitt", {})


def test_network_width_is_the_data_width_or_the_feature_map():
    """Synthetic networks are as wide as their data; image datasets go through the 25-wide
    feature map whatever the (synthetic-only) ``dim`` default says."""
    from resnet_scaling.training.data import make_digits

    assert network_width({"kind": "synthetic", "dim": 7}) == 7
    digits = make_digits(20, 10)
    assert network_width({"kind": "digits", "dim": 10}) == digits["x_train"].shape[1] == 25
    assert network_width({"kind": "mnist", "dim": 10}) == 25
