# Backpropagation limit (docs/maths.md §5): the backward equations and the forward-backward SDE
# system checked against the networks' own adjoints on synthetic weight paths with known
# limits, then the trained networks (and the same networks at initialisation) compared with
# the limit systems of their kernel-smoothed weights, against depth.
# Settings: the `fbsde` section of the config; schema validation (common.smk) fills in
# every default from src/resnet_scaling/config.schema.yaml.

FBSDE = config["fbsde"]


FBSDE_OUTPUTS = [
    "results/fbsde/convergence.csv",
    "results/fbsde/convergence_slopes.csv",
    *[
        f"figures/fbsde_{name}.{ext}"
        for name in (
            "convergence",
            "synthetic_adjoint_paths",
            "synthetic_gradient_field",
        )
        for ext in ("pdf", "png")
    ],
]


rule fbsde_convergence:
    output:
        errors=ensure("results/fbsde/convergence.csv", non_empty=True),
        slopes=ensure("results/fbsde/convergence_slopes.csv", non_empty=True),
        paths="results/fbsde/synthetic_paths.csv",
        field="results/fbsde/synthetic_gradient_field.npz",
        convergence_pdf="figures/fbsde_convergence.pdf",
        convergence_png=report(
            "figures/fbsde_convergence.png",
            caption="../report/fbsde_convergence.rst",
            category="Backpropagation limit",
            subcategory="Synthetic weight paths",
        ),
        paths_pdf="figures/fbsde_synthetic_adjoint_paths.pdf",
        paths_png=report(
            "figures/fbsde_synthetic_adjoint_paths.png",
            caption="../report/fbsde_synthetic_adjoint_paths.rst",
            category="Backpropagation limit",
            subcategory="Synthetic weight paths",
        ),
        field_pdf="figures/fbsde_synthetic_gradient_field.pdf",
        field_png=report(
            "figures/fbsde_synthetic_gradient_field.png",
            caption="../report/fbsde_synthetic_gradient_field.rst",
            category="Backpropagation limit",
            subcategory="Synthetic weight paths",
        ),
    log:
        "logs/fbsde/convergence.log",
    benchmark:
        "benchmarks/output/fbsde/convergence.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        cfg=FBSDE["convergence"],
    script:
        "../scripts/fbsde_convergence.py"


rule fbsde_trained:
    input:
        train=lambda wildcards: all_train_outputs(wildcards.exp),
        dataset=dataset_of,
    output:
        table=ensure("results/fbsde/{exp}/comparison.csv", non_empty=True),
        slopes=ensure("results/fbsde/{exp}/slopes.csv", non_empty=True),
        paths="results/fbsde/{exp}/adjoint_paths.csv",
        field="results/fbsde/{exp}/gradient_field.npz",
        error_pdf="figures/fbsde_gradient_error_{exp}.pdf",
        error_png=report(
            "figures/fbsde_gradient_error_{exp}.png",
            caption="../report/fbsde_gradient_error.rst",
            category="Backpropagation limit",
            subcategory="Trained networks",
            labels={"experiment": "{exp}", "figure": "errors against depth"},
        ),
        paths_pdf="figures/fbsde_adjoint_paths_{exp}.pdf",
        paths_png=report(
            "figures/fbsde_adjoint_paths_{exp}.png",
            caption="../report/fbsde_adjoint_paths.rst",
            category="Backpropagation limit",
            subcategory="Trained networks",
            labels={"experiment": "{exp}", "figure": "adjoints"},
        ),
        field_pdf="figures/fbsde_gradient_field_{exp}.pdf",
        field_png=report(
            "figures/fbsde_gradient_field_{exp}.png",
            caption="../report/fbsde_gradient_field.rst",
            category="Backpropagation limit",
            subcategory="Trained networks",
            labels={"experiment": "{exp}", "figure": "gradient field"},
        ),
    log:
        "logs/fbsde/trained/{exp}.log",
    benchmark:
        "benchmarks/output/fbsde/trained/{exp}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=fbsde_trained_mem,
        runtime=30,
    params:
        cfg=FBSDE["trained"],
    script:
        "../scripts/fbsde_trained.py"
