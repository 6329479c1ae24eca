# Scaling stage (docs/maths.md §3): from the layer sequences of every trained network (read
# from its training output, the initial weights left unread), take their statistics, fit
# exponents with seed-bootstrap intervals, classify the regime of each experiment, and draw
# the scaling figures (the references are compared in the verdict stage, verdict.smk).
# Settings: the `scaling` section of the config; schema validation (common.smk) fills in
# every default from src/resnet_scaling/config.schema.yaml.

SCALING = config["scaling"]
SCALING_INCLUDE = SCALING["include_status"]
SCALING_DECOMP = SCALING["decomposition"]
SCALING_PATHS = SCALING["paths"]
SCALING_EXPONENT_STAT = SCALING["regime"]["exponent_statistic"]


# Per experiment: the columns that describe it in every table of the stage.
SCALING_LABELS = {
    exp: {
        "dataset": experiment(exp)["dataset"],
        "dataset_kind": config["datasets"][experiment(exp)["dataset"]]["kind"],
        "activation": experiment(exp)["activation"],
        "delta": experiment(exp)["delta"],
        "shuffle": experiment(exp).get("shuffle", "correct"),
    }
    for exp in EXPERIMENTS
}
SCALING_OUTPUTS = [
    "results/exponents.csv",
    "results/regimes.csv",
    *[
        f"figures/scaling_{name}.{ext}"
        for name in ("max_norm", "hypothesis", "loss", "summary")
        for ext in ("pdf", "png")
    ],
]


# Light rules (a table or a figure in seconds) run on the submit host of a cluster.
localrules:
    scaling_figures,


rule scaling_statistics:
    input:
        train=lambda wildcards: all_train_outputs(wildcards.exp),
        dataset=dataset_of,
    output:
        statistics=ensure("results/scaling/{exp}/statistics.csv", non_empty=True),
        training="results/scaling/{exp}/training.csv",
    log:
        "logs/scaling/statistics/{exp}.log",
    benchmark:
        "benchmarks/output/scaling/statistics/{exp}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        labels=lambda wildcards: SCALING_LABELS[wildcards.exp],
        window_fraction=SCALING["detrend_window"],
    script:
        "../scripts/scaling_statistics.py"


checkpoint scaling_exponents:
    input:
        expand("results/scaling/{exp}/statistics.csv", exp=EXPERIMENTS),
    output:
        exponents=ensure("results/exponents.csv", non_empty=True),
        regimes=ensure("results/regimes.csv", non_empty=True),
    log:
        "logs/scaling/exponents.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        fit=SCALING["fit"],
        bootstrap=SCALING["bootstrap"],
        include_status=SCALING_INCLUDE,
        population=SCALING["population"],
        regime=SCALING["regime"],
        networks=[networks_of(exp) for exp in EXPERIMENTS],
    script:
        "../scripts/scaling_exponents.py"


rule scaling_paths:
    input:
        train=lambda wildcards: [
            train_output(wildcards.exp, d)
            for d in SELECTIONS[wildcards.exp]["scaling.paths"]
        ],
        exponents="results/exponents.csv",
        regimes="results/regimes.csv",
    output:
        table="results/scaling/{exp}/paths.csv",
        pdf="figures/scaling_paths_{exp}.pdf",
        png=report(
            "figures/scaling_paths_{exp}.png",
            caption="../report/scaling_paths.rst",
            category="Scaling",
            subcategory="Weight paths",
            labels={"experiment": "{exp}"},
        ),
    log:
        "logs/scaling/paths/{exp}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        n_entries=SCALING_PATHS["n_entries"],
        n_depths=SCALING_PATHS["n_depths"],
        exponent_statistic=SCALING_EXPONENT_STAT,
        include_status=SCALING_INCLUDE,
    script:
        "../scripts/scaling_paths.py"


rule scaling_decomposition:
    input:
        train=lambda wildcards: [
            train_output(wildcards.exp, d)
            for d in SELECTIONS[wildcards.exp]["scaling.decomposition"]
        ],
        exponents="results/exponents.csv",
        regimes="results/regimes.csv",
        dataset=dataset_of,
    output:
        decomposition="results/scaling/{exp}/decomposition.csv",
        losses="results/scaling/{exp}/denoised_loss.csv",
        pdf="figures/scaling_decomposition_{exp}.pdf",
        png=report(
            "figures/scaling_decomposition_{exp}.png",
            caption="../report/scaling_decomposition.rst",
            category="Scaling",
            subcategory="Trend and noise",
            labels={"experiment": "{exp}"},
        ),
    log:
        "logs/scaling/decomposition/{exp}.log",
    benchmark:
        "benchmarks/output/scaling/decomposition/{exp}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        n_cells=SCALING_DECOMP["n_cells"],
        show_depths=SCALING_DECOMP["show_depths"],
        n_entries=SCALING_DECOMP["n_entries"],
        exponent_statistic=SCALING_EXPONENT_STAT,
        include_status=SCALING_INCLUDE,
        epsilon=lambda wildcards: experiment(wildcards.exp).get("epsilon", 1e-3),
    script:
        "../scripts/scaling_decomposition.py"


rule scaling_robustness:
    input:
        statistics=lambda wildcards: expand(
            "results/scaling/{exp}/statistics.csv", exp=analysed_experiments()
        ),
        training=lambda wildcards: expand(
            "results/scaling/{exp}/training.csv", exp=analysed_experiments()
        ),
    output:
        table="results/scaling_robustness.csv",
        pdf="figures/scaling_robustness.pdf",
        png=report(
            "figures/scaling_robustness.png",
            caption="../report/scaling_robustness.rst",
            category="Scaling",
            subcategory="Exponents",
        ),
    log:
        "logs/scaling/robustness.log",
    benchmark:
        "benchmarks/output/scaling/robustness.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        fit=SCALING["fit"],
        bootstrap=SCALING["bootstrap"],
        include_status=SCALING_INCLUDE,
        population=SCALING["population"],
        regime=SCALING["regime"],
        window_depths=SCALING["robustness"]["window_depths"],
        networks=lambda wildcards: [networks_of(exp) for exp in analysed_experiments()],
        steps_per_epoch={
            exp: -(
                -config["datasets"][experiment(exp)["dataset"]]["n_train"]
                // experiment(exp)["batch_size"]
            )
            for exp in EXPERIMENTS
        },
    script:
        "../scripts/scaling_robustness.py"


# -- figures of the whole stage: one function each in src/resnet_scaling/plots/scaling.py and
# plots/regimes.py, drawn by one job (the per-experiment figures are drawn by the rules that write
# their tables)


rule scaling_figures:
    input:
        statistics=expand("results/scaling/{exp}/statistics.csv", exp=EXPERIMENTS),
        training=expand("results/scaling/{exp}/training.csv", exp=EXPERIMENTS),
        exponents="results/exponents.csv",
        regimes="results/regimes.csv",
        data=sorted(set(dataset_file(exp) for exp in EXPERIMENTS)),
    output:
        max_norm_pdf="figures/scaling_max_norm.pdf",
        max_norm_png=report(
            "figures/scaling_max_norm.png",
            caption="../report/scaling_max_norm.rst",
            category="Scaling",
            subcategory="Exponents",
        ),
        hypothesis_pdf="figures/scaling_hypothesis.pdf",
        hypothesis_png=report(
            "figures/scaling_hypothesis.png",
            caption="../report/scaling_hypothesis.rst",
            category="Scaling",
            subcategory="Exponents",
        ),
        loss_pdf="figures/scaling_loss.pdf",
        loss_png=report(
            "figures/scaling_loss.png",
            caption="../report/scaling_loss.rst",
            category="Scaling",
            subcategory="Training",
        ),
        summary_pdf="figures/scaling_summary.pdf",
        summary_png=report(
            "figures/scaling_summary.png",
            caption="../report/scaling_summary.rst",
            category="Scaling",
            subcategory="Regimes",
        ),
    log:
        "logs/scaling/figures.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        include_status=SCALING_INCLUDE,
        epsilons={exp: experiment(exp)["epsilon"] for exp in EXPERIMENTS},
        datasets={exp: dataset_file(exp) for exp in EXPERIMENTS},
        regime=SCALING["regime"],
        experiments=EXPERIMENTS,
        networks=[networks_of(exp) for exp in EXPERIMENTS],
    script:
        "../scripts/scaling_figures.py"
