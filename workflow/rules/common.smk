# Helpers shared by every stage: config validation, experiment and depth lookups,
# wildcard constraints. All numerical logic lives in src/resnet_scaling.

import json
import os
import re
import sys
import time
from pathlib import Path

from snakemake.utils import validate

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)

from resnet_scaling.config import (  # noqa: E402
    SCHEMA_PATH,
    ConfigError,
    conv_experiment_defaults,
    analysis_selections,
    check_config,
    depth_grid,
    experiment_device,
    network_width,
    schema_error,
)
from resnet_scaling.provenance import canonical_config, code_digest  # noqa: E402
from resnet_scaling.runs import (  # noqa: E402
    RUN_DIR_ENV,
    check_run_directory,
    chosen_run_directory,
    describe_run,
    resolve_data_paths,
    script_environment,
)
from resnet_scaling.snakemake_adapter import (  # noqa: E402
    attach_params,
    invocation,
    rerun_incomplete,
)
from resnet_scaling.dataset_files import (  # noqa: E402
    DOWNLOADABLE,
    dataset_folder,
    download_names,
    source_files,
)
from resnet_scaling.training.resources import (  # noqa: E402
    DEFAULT_TRAIN_MINUTES,
    conv_epoch_seconds,
    fbsde_trained_mem_mb,
    fc_epoch_seconds,
    fc_unmeasured,
    limits_fit_mem_mb,
    train_runtime_minutes,
    wants_gpu,
)

# The jobs' PYTHONPATH and PATH: set rather than read, so there is nothing for an `envvars:`
# directive to assert.
os.environ.update(script_environment(SRC, sys.executable, os.environ))

# One sentence naming the key before Snakemake's own validation (which prints the schema).
_schema_problem = schema_error(config)
if _schema_problem:
    raise ConfigError(_schema_problem)
# The schema ships inside the package (src/resnet_scaling/config.schema.yaml): the workflow
# validates against the very file whose defaults the library fills in.
validate(config, schema=str(SCHEMA_PATH))

# Every config writes in its own folder (src/resnet_scaling/runs.py): a run started in the
# repository goes to runs/<config names>-<digest>/, one given --directory stays there. Jobs that
# Snakemake starts itself (cluster jobs) begin where the run began and follow it there.
ROOT = Path(workflow.basedir).resolve()
_INVOCATION = invocation(workflow)
_CONFIGFILES = _INVOCATION.configfiles
_CONFIG_VALUES = _INVOCATION.config_values
_MAIN = _INVOCATION.main
RUN_DIR = chosen_run_directory(
    _CONFIGFILES,
    _CONFIG_VALUES,
    ROOT,
    main=_MAIN,
    directory_given=_INVOCATION.directory_given,
    cwd=Path.cwd(),
    environ=os.environ,
)
if _MAIN:
    # never the repository itself nor a committed gallery (figures/…): one sentence, no job run
    check_run_directory(RUN_DIR, ROOT)
    os.environ[RUN_DIR_ENV] = str(RUN_DIR)
if RUN_DIR != Path.cwd().resolve():

    workdir: str(RUN_DIR)


resolve_data_paths(config, ROOT)
check_config(config)
# Key order means nothing in the config (a YAML re-dump reorders it) except the order of the
# experiments, that of the rows and legends: every other mapping is sorted, so that params,
# and what the scripts compute from them, depend on the config's values only.
_canonical = canonical_config(config)
config.clear()
config.update(_canonical)
# Named on the report's front page (workflow/report/workflow.rst); no rule reads it.
config["run"] = describe_run(_CONFIGFILES, _CONFIG_VALUES, ROOT, RUN_DIR)

EXPERIMENTS = [
    name for name, exp in config["experiments"].items() if exp.get("enabled", True)
]
# The depths each analysis step uses (checked by check_config: none is empty).
SELECTIONS = {exp: analysis_selections(config, exp) for exp in EXPERIMENTS}
DATASETS = sorted({config["experiments"][e]["dataset"] for e in EXPERIMENTS})


def attach_code_digests():
    """Every step that runs a script or a notebook gets the param `code`, the digest of
    that file and of the package modules it imports (provenance.code_digest), so that the
    params trigger reruns what a change in src/ makes stale (README, "When a result is
    rerun"). Called once all rules are defined.
    """
    attach_params(workflow, "code", code_digest)


def experiment(exp):
    """The config dict of one experiment."""
    return config["experiments"][exp]


def depths_of(exp):
    """Sorted depths of an experiment's grid."""
    return depth_grid(experiment(exp)["depths"])


def networks_of(exp):
    """The networks every table of an experiment holds: its depths x seeds, as the config
    says (the readers check each table against it: tables.check_networks)."""
    return {
        "experiment": exp,
        "depths": depths_of(exp),
        "seeds": experiment(exp)["seeds"],
    }


def train_output(exp, depth):
    return f"results/train/{exp}/depth_{depth}.npz"


def all_train_outputs(exp):
    return [train_output(exp, depth) for depth in depths_of(exp)]


def dataset_file(exp):
    """The data file an experiment trains on."""
    return f"results/data/{experiment(exp)['dataset']}.npz"


def dataset_of(wildcards):
    return dataset_file(wildcards.exp)


def train_mem_mb(wildcards, attempt):
    """MB for one training job, doubled on every retry. The engine keeps per layer the
    parameters with their gradients, Adam moments and initial copy, and the minibatch
    trajectories (h, z, σ(z), U, p); evaluation passes the whole dataset through four
    (S, n, d) work tensors. Measured peaks on CPU, float32: 1386 MB at L = 9100, S = 8,
    d = 10 and 1026 MB at L = 2116, d = 25, against 1846 and 1494 MB from this model."""
    exp = experiment(wildcards.exp)
    data = config["datasets"][exp["dataset"]]
    dim, seeds, depth = network_width(data), exp["seeds"], int(wildcards.depth)
    params = depth * seeds * (dim * dim + dim + 1)
    trajectories = (depth + 1) * seeds * exp["batch_size"] * dim
    evaluation = seeds * (data["n_train"] + data["n_test"]) * dim
    floats = 10 * params + 12 * trajectories + 6 * evaluation
    bytes_per_float = 8 if config["dtype"] == "float64" else 4
    return int((400 + floats * bytes_per_float / 1e6) * attempt)


def _width_and_seeds(exp):
    exp_cfg = experiment(exp)
    return network_width(config["datasets"][exp_cfg["dataset"]]), exp_cfg["seeds"]


def fbsde_trained_mem(wildcards, attempt):
    """MB for the backward comparison of all depths of one experiment (training/resources.py)."""
    width, seeds = _width_and_seeds(wildcards.exp)
    n_inputs = config["fbsde"]["trained"]["n_inputs"]
    return (
        fbsde_trained_mem_mb(seeds, max(depths_of(wildcards.exp)), width, n_inputs)
        * attempt
    )


def limits_fit_mem(wildcards, attempt):
    """MB for the limit fit of one experiment's deepest networks (training/resources.py)."""
    width, seeds = _width_and_seeds(wildcards.exp)
    depth = max(SELECTIONS[wildcards.exp]["limits.fit"])
    return limits_fit_mem_mb(seeds, depth, width) * attempt


def train_device(wildcards):
    """The device of a fully connected training job: its experiment's, else the config's."""
    return experiment_device(config, experiment(wildcards.exp))


def train_gpus(wildcards):
    """GPUs of a fully connected training job: one for device cuda, none otherwise (auto on a
    cluster: a CPU node; training/resources.wants_gpu)."""
    return int(wants_gpu(train_device(wildcards), convolutional=False))


def cluster_partition(gpus):
    """The SLURM partition of a training job placed by its device: the site's partitions of
    workflow/profiles/slurm (RESNET_SCALING_GPU_PARTITION, default gpu;
    RESNET_SCALING_CPU_PARTITION, default the cluster's default). Ignored by a local run.
    """
    if gpus:
        return os.environ.get("RESNET_SCALING_GPU_PARTITION", "gpu")
    return os.environ.get("RESNET_SCALING_CPU_PARTITION", "")


# Experiments whose training request was the default (no measurement), said once per run.
_UNMEASURED_SAID = set()


def say_unmeasured(name, why):
    """Say once, on the console of the invocation, that a training job asks the default time."""
    if not _MAIN or name in _UNMEASURED_SAID:
        return
    _UNMEASURED_SAID.add(name)
    print(
        f"training time of {name}: the cost model has no measurement for {why}; its jobs ask "
        f"the default {DEFAULT_TRAIN_MINUTES} minutes (src/resnet_scaling/training/resources.py)",
        file=sys.stderr,
    )


def train_runtime(wildcards, attempt):
    """Minutes: the measured cost per layer and epoch of the compiled engine for max_epochs
    epochs, with the safety factor and start-up minutes of training/resources.py, times the
    attempt, at most a day; the default request where the model has no measurement."""
    exp = experiment(wildcards.exp)
    data = config["datasets"][exp["dataset"]]
    width = network_width(data)
    why = fc_unmeasured(
        width=width,
        activation=exp["activation"],
        block=exp["block"],
        engine=config["engine"],
        dtype=config["dtype"],
        batch_size=exp["batch_size"],
        on_gpu=bool(train_gpus(wildcards)),
    )
    if why is not None:
        say_unmeasured(wildcards.exp, why)
        return train_runtime_minutes(None, exp["max_epochs"], attempt)
    seconds = fc_epoch_seconds(
        depth=int(wildcards.depth),
        seeds=exp["seeds"],
        width=width,
        activation=exp["activation"],
        batch_size=exp["batch_size"],
        n_train=data["n_train"],
        n_test=data["n_test"],
    )
    return train_runtime_minutes(seconds, exp["max_epochs"], attempt)


def limits_fit_depths(exp):
    """The deepest limits.fit.n_depths depths holding a network of the population the primary
    verdict describes (read once the scaling checkpoint has run: limits.fit_depths)."""
    from resnet_scaling.limits import fit_depths

    regimes = checkpoints.scaling_exponents.get().output.regimes
    return fit_depths(
        regimes,
        f"results/scaling/{exp}/training.csv",
        exp,
        depths_of(exp),
        config["limits"]["fit"]["n_depths"],
    )


def analysed_experiments():
    """Experiments with at least one usable network, once `scaling_exponents` has run.

    An experiment whose every network diverged (or was otherwise excluded) has a row in
    results/regimes.csv saying why, and no per-experiment analysis downstream.
    """
    from resnet_scaling.scaling.tables import read_regimes

    regimes = read_regimes(
        checkpoints.scaling_exponents.get().output.regimes, EXPERIMENTS
    )
    usable = set(regimes.loc[regimes["n_usable"] > 0, "experiment"])
    return [exp for exp in EXPERIMENTS if exp in usable]


def scaling_experiment_outputs(exps):
    """Per-experiment figures of the experiments that have usable networks, and the
    robustness table and figure over them."""
    return [
        "results/scaling_robustness.csv",
        *[f"figures/scaling_robustness.{ext}" for ext in ("pdf", "png")],
        *[
            f"figures/scaling_{name}_{exp}.{ext}"
            for name in ("paths", "decomposition")
            for exp in exps
            for ext in ("pdf", "png")
        ],
    ]


def limits_experiment_outputs(exps):
    """Per-experiment limit figures of the experiments that have usable networks."""
    return [
        f"figures/limits_{name}_{exp}.{ext}"
        for exp in exps
        for name in ("trajectories", "error", "coefficients")
        for ext in ("pdf", "png")
    ]


def fbsde_experiment_outputs(exps):
    """Per-experiment backward-limit tables and figures of the experiments with usable networks."""
    return [
        *[f"results/fbsde/{exp}/slopes.csv" for exp in exps],
        *[
            f"figures/fbsde_{name}_{exp}.{ext}"
            for exp in exps
            for name in ("adjoint_paths", "gradient_error", "gradient_field")
            for ext in ("pdf", "png")
        ],
    ]


def fixed_outputs():
    """What the default target builds whatever the scaling checkpoint finds, stage by stage
    (nothing for a config of convolutional experiments only). Planned from the start, so
    Snakemake checks all of them, the checkpoint's second output (results/regimes.csv)
    included: a checkpoint job is planned for its first output only."""
    if not EXPERIMENTS:
        return []
    return [
        *[train_output(e, d) for e in EXPERIMENTS for d in depths_of(e)],
        *SCALING_OUTPUTS,
        *LIMITS_OUTPUTS,
        *FBSDE_OUTPUTS,
        *VERDICT_OUTPUTS,
        *INIT_LIMITS_OUTPUTS,
        *NOTEBOOK_OUTPUTS,
        *(PHASE_DIAGRAM_OUTPUTS if config["regimes"]["enabled"] else []),
    ]


def checkpoint_outputs(wildcards):
    """The per-experiment outputs of the experiments with usable networks, known once the
    scaling checkpoint has run."""
    if not EXPERIMENTS:
        return []
    exps = analysed_experiments()
    rerun_incomplete_after_checkpoint()
    return [
        *scaling_experiment_outputs(exps),
        *limits_experiment_outputs(exps),
        *fbsde_experiment_outputs(exps),
    ]


# When this invocation started: markers of jobs it started itself are younger.
STARTED = time.time()


def rerun_incomplete_after_checkpoint():
    """Snakemake checks the incomplete markers (outputs of killed jobs) of the jobs it plans
    before the scaling checkpoint, not of those it plans after it. Those are checked here
    as Snakemake checks the others (snakemake_adapter.rerun_incomplete): with
    rerun-incomplete (profiles/default) they rerun, otherwise they are refused, naming the
    files. Markers of this invocation's own jobs are younger than STARTED and left alone.
    """
    rerun_incomplete(workflow, STARTED, ("results", "figures"))


# -- the training-side phase diagram (workflow/rules/phase_diagram.smk) ---------------------


def phase_diagram_cells():
    """Name -> labels and experiment config of every cell of the phase diagram (checked here)."""
    from resnet_scaling.scaling.exponents import FitSettings
    from resnet_scaling.phase_diagram.study import cells, check_spec

    check_spec(config["regimes"], FitSettings.from_config(config["scaling"]))
    return cells(config["regimes"])


def phase_diagram_anchor_experiments():
    """Name -> experiment config of the Marion et al. anchor, one per setting and initialisation profile."""
    from resnet_scaling.phase_diagram.study import anchor_experiments

    return anchor_experiments(config["regimes"])


def phase_diagram_anchor_labels():
    """Name -> setting and profile of every anchor experiment."""
    from resnet_scaling.phase_diagram.study import anchor_labels

    return anchor_labels(config["regimes"])


def phase_diagram_experiment(wildcards):
    """The experiment config of a cell or an anchor experiment."""
    if wildcards.cell in PHASE_DIAGRAM_ANCHORS:
        return PHASE_DIAGRAM_ANCHORS[wildcards.cell]
    return PHASE_DIAGRAM_CELLS[wildcards.cell]["experiment"]


def phase_diagram_dataset(wildcards):
    """The dataset spec a cell (or the anchor) trains on."""
    from resnet_scaling.phase_diagram.study import anchor_dataset

    if wildcards.cell in PHASE_DIAGRAM_ANCHORS:
        return anchor_dataset(config["regimes"], wildcards.cell)
    return config["regimes"]["dataset"]


def _phase_diagram_layer_floats(wildcards):
    exp, data = phase_diagram_experiment(wildcards), phase_diagram_dataset(wildcards)
    width = max(data.get("dim", 10), exp.get("hidden_width") or 0)
    depth = max(exp["depths"])
    batch = min(exp.get("batch_size", 32), data["n_train"])
    return 3 * (depth + 1) * exp["seeds"] * batch * width


def phase_diagram_train_mem_mb(wildcards, attempt):
    """The deepest network's trajectories and work tensors dominate."""
    return int(1000 + _phase_diagram_layer_floats(wildcards) * 8 / 1e6 * attempt)


def phase_diagram_train_runtime(wildcards, attempt):
    """Minutes; a generous linear model in the summed depths, doubled on every retry."""
    exp = phase_diagram_experiment(wildcards)
    return int(10 + exp.get("max_epochs", 200) * sum(exp["depths"]) / 400 * attempt)


# -- the convolutional (CIFAR-10) experiments (workflow/rules/cifar.smk) --------------------

CONV_EXPERIMENTS = [
    name
    for name, exp in (config.get("conv_experiments") or {}).items()
    if exp.get("enabled", True)
]


CONV_DEFAULTS = conv_experiment_defaults()


def conv_experiment(cexp):
    """The config dict of one convolutional experiment, every default filled in."""
    return {**CONV_DEFAULTS, **config["conv_experiments"][cexp]}


def conv_networks_of(cexp):
    """The networks every table of a convolutional experiment holds (tables.check_networks)."""
    exp = conv_experiment(cexp)
    return {"experiment": cexp, "depths": exp["depths"], "seeds": exp["seeds"]}


def conv_dataset(wildcards):
    return f"results/data/{conv_experiment(wildcards.cexp)['dataset']}.npz"


def dataset_sources(wildcards):
    """The files the data job reads (MNIST, CIFAR-10): replacing one reruns the dataset."""
    return source_files(config["datasets"][wildcards.dataset])


# Datasets fetched by a download rule: their folder -> their entry. The folders are absolute
# (resolve_data_paths), so the rule's log, logs/download/<kind><folder>.log, lies under logs/.
DOWNLOADS = {
    dataset_folder(spec): spec
    for spec in config["datasets"].values()
    if spec.get("download") and spec["kind"] in DOWNLOADABLE
}


def download_folders(kind):
    """Wildcard constraint: the folders of the downloading datasets of one kind."""
    folders = [re.escape(f) for f, spec in DOWNLOADS.items() if spec["kind"] == kind]
    return "|".join(folders) if folders else "(?!)"


def download_spec(wildcards):
    """What the download needs, as JSON: kind, folder and the verified archives."""
    spec = DOWNLOADS[wildcards.folder]
    return json.dumps(
        {"kind": spec["kind"], "path": spec["path"], "urls": spec["urls"]}
    )


def cifar_train_mem_mb(wildcards, attempt):
    """The images of the dataset (uint8, with a float copy of a batch) and the network's
    parameters with their momentum buffers, finished seeds and checkpoints in host memory.
    """
    exp = conv_experiment(wildcards.cexp)
    n = config["datasets"][exp["dataset"]]["n_train"]
    params = 1.2e6 * (exp["width"] / 64) ** 2 * int(wildcards.depth)
    return int(
        (2000 + n * 3072 * 3 / 1e6 + params * 4 * (exp["seeds"] + 4) / 1e6) * attempt
    )


def cifar_train_gpus(wildcards):
    """GPUs of a convolutional training job: one for device auto or cuda, none for cpu."""
    exp = conv_experiment(wildcards.cexp)
    return int(wants_gpu(experiment_device(config, exp), convolutional=True))


def cifar_train_runtime(wildcards, attempt):
    """Minutes: every block costs about the same (channels double as the image area quarters);
    the cost per block and epoch on the job's device (training/resources.py), with the safety
    factor and start-up minutes, times the attempt, at most a day."""
    exp = conv_experiment(wildcards.cexp)
    seconds = conv_epoch_seconds(
        depth=int(wildcards.depth),
        seeds=exp["seeds"],
        width=exp["width"],
        n_train=config["datasets"][exp["dataset"]]["n_train"],
        on_gpu=bool(cifar_train_gpus(wildcards)),
    )
    return train_runtime_minutes(seconds, exp["epochs"], attempt)


wildcard_constraints:
    cexp="|".join(CONV_EXPERIMENTS) if CONV_EXPERIMENTS else "(?!)",
    exp="|".join(EXPERIMENTS) if EXPERIMENTS else "(?!)",
    depth=r"\d+",
    dataset="|".join(config["datasets"]),
