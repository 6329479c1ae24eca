# Verdict stage (docs/maths.md §3, §4): after the limits stage, our exponents, regimes and
# pathwise limits beside the reference values of the original study, with how the training
# of every experiment ended against the affine floor of its data, in one scorecard.
# It reads every earlier stage; no earlier stage reads it.
# Settings: `scaling.scorecard` and `scaling.regime` of the config; schema validation
# (common.smk) fills in every default from src/resnet_scaling/config.schema.yaml.

VERDICT_SETTINGS = config["scaling"]["scorecard"]
VERDICT_OUTPUTS = [
    "results/scorecard.md",
    "results/scorecard.html",
]


# Light rules (a table in seconds) run on the submit host of a cluster.
localrules:
    verdict_scorecard,


rule verdict_scorecard:
    input:
        exponents="results/exponents.csv",
        regimes="results/regimes.csv",
        robustness="results/scaling_robustness.csv",
        pathwise="results/limits/pathwise_verdicts.csv",
        training=expand("results/scaling/{exp}/training.csv", exp=EXPERIMENTS),
        data=sorted(set(dataset_file(exp) for exp in EXPERIMENTS)),
    output:
        markdown="results/scorecard.md",
        html=report(
            "results/scorecard.html",
            caption="../report/verdict_scorecard.rst",
            category="Scaling",
            subcategory="Scorecard",
        ),
    log:
        "logs/verdict/scorecard.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        rounding=VERDICT_SETTINGS["rounding"],
        non_affine_threshold=VERDICT_SETTINGS["non_affine_threshold"],
        regime=config["scaling"]["regime"],
        experiments=EXPERIMENTS,
        include_status=config["scaling"]["include_status"],
        networks=[networks_of(exp) for exp in EXPERIMENTS],
        datasets={exp: dataset_file(exp) for exp in EXPERIMENTS},
        epsilons={exp: experiment(exp)["epsilon"] for exp in EXPERIMENTS},
    script:
        "../scripts/verdict_scorecard.py"
