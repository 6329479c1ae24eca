# Limit stage (docs/maths.md §4): the solvers checked against known rates on synthetic weights,
# then the limit ODE/SDE fitted to each experiment's deepest trained networks, pathwise
# and generatively, with a note on how close each fitted limit is.
# Settings: the `limits` section of the config; schema validation (common.smk) fills in
# every default from src/resnet_scaling/config.schema.yaml.

LIMITS = config["limits"]
LIMITS_FIT = LIMITS["fit"]


LIMITS_OUTPUTS = [
    "results/limits/convergence.csv",
    "results/limits/convergence_fits.csv",
    "results/limits/summary.csv",
    "results/limits/note.md",
    "results/limits/pathwise.csv",
    "results/limits/pathwise_slopes.csv",
    "results/limits/pathwise_verdicts.csv",
    *[
        f"figures/limits_{name}.{ext}"
        for name in ("convergence", "pathwise")
        for ext in ("pdf", "png")
    ],
]


# Light rules (a note in seconds) run on the submit host of a cluster.
localrules:
    limits_note,


rule limits_convergence:
    output:
        table=ensure("results/limits/convergence.csv", non_empty=True),
        fits=ensure("results/limits/convergence_fits.csv", non_empty=True),
        convergence_pdf="figures/limits_convergence.pdf",
        convergence_png=report(
            "figures/limits_convergence.png",
            caption="../report/limits_convergence.rst",
            category="Limits of the hidden state",
            subcategory="Synthetic weight paths",
        ),
    log:
        "logs/limits/convergence.log",
    benchmark:
        "benchmarks/output/limits/convergence.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=LIMITS["convergence"],
    script:
        "../scripts/limits_convergence.py"


rule limits_fit:
    input:
        train=lambda wildcards: [
            train_output(wildcards.exp, d) for d in limits_fit_depths(wildcards.exp)
        ],
        training="results/scaling/{exp}/training.csv",
        dataset=dataset_of,
        regimes="results/regimes.csv",
        exponents="results/exponents.csv",
    output:
        pathwise="results/limits/{exp}/pathwise.csv",
        generative=ensure("results/limits/{exp}/generative.csv", non_empty=True),
        coefficients=ensure("results/limits/{exp}/coefficients.csv", non_empty=True),
        trajectories=ensure("results/limits/{exp}/trajectories.csv", non_empty=True),
        agreement="results/limits/{exp}/agreement.csv",
        summary="results/limits/{exp}/summary.json",
        trajectories_pdf="figures/limits_trajectories_{exp}.pdf",
        trajectories_png=report(
            "figures/limits_trajectories_{exp}.png",
            caption="../report/limits_trajectories.rst",
            category="Limits of the hidden state",
            subcategory="Trained networks",
            labels={"experiment": "{exp}", "figure": "trajectories"},
        ),
        error_pdf="figures/limits_error_{exp}.pdf",
        error_png=report(
            "figures/limits_error_{exp}.png",
            caption="../report/limits_error.rst",
            category="Limits of the hidden state",
            subcategory="Trained networks",
            labels={"experiment": "{exp}", "figure": "error against depth"},
        ),
        coefficients_pdf="figures/limits_coefficients_{exp}.pdf",
        coefficients_png=report(
            "figures/limits_coefficients_{exp}.png",
            caption="../report/limits_coefficients.rst",
            category="Limits of the hidden state",
            subcategory="Trained networks",
            labels={"experiment": "{exp}", "figure": "drift and diffusion"},
        ),
    log:
        "logs/limits/fit/{exp}.log",
    benchmark:
        "benchmarks/output/limits/fit/{exp}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=limits_fit_mem,
        runtime=30,
    params:
        cfg=LIMITS_FIT,
        seed=config["seed"],
        exponent_statistic=config["scaling"]["regime"]["exponent_statistic"],
    script:
        "../scripts/limits_fit.py"


rule limits_signatures:
    input:
        train=lambda wildcards: all_train_outputs(wildcards.exp),
        dataset=dataset_of,
    output:
        table=ensure("results/limits/{exp}/signatures.csv", non_empty=True),
    log:
        "logs/limits/signatures/{exp}.log",
    benchmark:
        "benchmarks/output/limits/signatures/{exp}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=30,
    params:
        cfg=LIMITS["pathwise"],
    script:
        "../scripts/limits_signatures.py"


rule limits_pathwise:
    input:
        signatures=lambda wildcards: expand(
            "results/limits/{exp}/signatures.csv", exp=analysed_experiments()
        ),
        regimes="results/regimes.csv",
    output:
        networks=ensure("results/limits/pathwise.csv", non_empty=True),
        slopes=ensure("results/limits/pathwise_slopes.csv", non_empty=True),
        verdicts=ensure("results/limits/pathwise_verdicts.csv", non_empty=True),
        pdf="figures/limits_pathwise.pdf",
        png=report(
            "figures/limits_pathwise.png",
            caption="../report/limits_pathwise.rst",
            category="Limits of the hidden state",
            subcategory="Trained networks",
            labels={"figure": "pathwise signatures"},
        ),
    log:
        "logs/limits/pathwise.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=LIMITS["pathwise"],
        bootstrap=config["scaling"]["bootstrap"],
        include_status=config["scaling"]["include_status"],
    script:
        "../scripts/limits_pathwise.py"


rule limits_note:
    input:
        summaries=lambda wildcards: expand(
            "results/limits/{exp}/summary.json", exp=analysed_experiments()
        ),
        fits="results/limits/convergence_fits.csv",
        verdicts="results/limits/pathwise_verdicts.csv",
    output:
        note=report(
            ensure("results/limits/note.md", non_empty=True),
            caption="../report/limits_note.rst",
            category="Limits of the hidden state",
            subcategory="Note",
        ),
        table="results/limits/summary.csv",
    log:
        "logs/limits/note.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        close_threshold=LIMITS_FIT["close_threshold"],
    script:
        "../scripts/limits_note.py"
