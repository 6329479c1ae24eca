# The convolutional (CIFAR-10) experiments of `conv_experiments` (docs/references.md): train
# every (experiment, depth) on its dataset, measure the conv1 (A) and conv2 (δ) kernels of every
# block by operator norm (FFT) and Frobenius norm, and fit exponents and the regime with the
# code of the fully connected experiments (docs/maths.md §3).

CIFAR_OUTPUTS = [
    "results/cifar/exponents.csv",
    "results/cifar/regimes.csv",
    "results/cifar/scorecard.md",
    *[
        f"figures/cifar_{name}.{ext}"
        for name in ("max_norm", "hypothesis")
        for ext in ("pdf", "png")
    ],
]


localrules:
    cifar_figure,


rule cifar_train:
    input:
        conv_dataset,
    output:
        "results/cifar/train/{cexp}/depth_{depth}.npz",
    log:
        "logs/cifar/train/{cexp}/depth_{depth}.log",
    benchmark:
        "benchmarks/output/cifar/train/{cexp}/depth_{depth}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=cifar_train_mem_mb,
        runtime=cifar_train_runtime,
        gpu=cifar_train_gpus,
        slurm_partition=lambda wildcards: cluster_partition(cifar_train_gpus(wildcards)),
    params:
        experiment=lambda wildcards: conv_experiment(wildcards.cexp),
        seed=config["seed"],
        device=lambda wildcards: experiment_device(
            config, conv_experiment(wildcards.cexp)
        ),
        checkpoint="results/checkpoints/cifar/{cexp}/depth_{depth}.pt",
    script:
        "../scripts/cifar_train.py"


rule cifar_extract:
    input:
        "results/cifar/train/{cexp}/depth_{depth}.npz",
    output:
        layers="results/cifar/{cexp}/depth_{depth}_layers.csv.gz",
        training="results/cifar/{cexp}/depth_{depth}_training.csv",
    log:
        "logs/cifar/extract/{cexp}/depth_{depth}.log",
    benchmark:
        "benchmarks/output/cifar/extract/{cexp}/depth_{depth}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards: 2000 + 40 * int(wildcards.depth),
        runtime=lambda wildcards: 10 + int(wildcards.depth),
    script:
        "../scripts/cifar_extract.py"


rule cifar_statistics:
    input:
        layers=lambda wildcards: expand(
            "results/cifar/{{cexp}}/depth_{depth}_layers.csv.gz",
            depth=conv_experiment(wildcards.cexp)["depths"],
        ),
        training=lambda wildcards: expand(
            "results/cifar/{{cexp}}/depth_{depth}_training.csv",
            depth=conv_experiment(wildcards.cexp)["depths"],
        ),
    output:
        statistics=ensure("results/cifar/{cexp}/statistics.csv", non_empty=True),
        training="results/cifar/{cexp}/training.csv",
    log:
        "logs/cifar/statistics/{cexp}.log",
    benchmark:
        "benchmarks/output/cifar/statistics/{cexp}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        labels=lambda wildcards: {"dataset": conv_experiment(wildcards.cexp)["dataset"]},
    script:
        "../scripts/cifar_statistics.py"


rule cifar_exponents:
    input:
        expand("results/cifar/{cexp}/statistics.csv", cexp=CONV_EXPERIMENTS),
    output:
        exponents=ensure("results/cifar/exponents.csv", non_empty=True),
        regimes=ensure("results/cifar/regimes.csv", non_empty=True),
        scorecard="results/cifar/scorecard.md",
    log:
        "logs/cifar/exponents.log",
    benchmark:
        "benchmarks/output/cifar/exponents.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        scaling=config["scaling"],
        experiments={cexp: conv_experiment(cexp) for cexp in CONV_EXPERIMENTS},
        networks=[conv_networks_of(cexp) for cexp in CONV_EXPERIMENTS],
    script:
        "../scripts/cifar_exponents.py"


rule cifar_figure:
    input:
        statistics=expand("results/cifar/{cexp}/statistics.csv", cexp=CONV_EXPERIMENTS),
        exponents="results/cifar/exponents.csv",
    output:
        pdf="figures/cifar_{name}.pdf",
        png=report(
            "figures/cifar_{name}.png",
            caption="../report/cifar.rst",
            category="CIFAR-10",
            labels={"figure": "{name}"},
        ),
    log:
        "logs/cifar/figure_{name}.log",
    benchmark:
        "benchmarks/output/cifar/figure_{name}.tsv"
    wildcard_constraints:
        name="max_norm|hypothesis",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        networks=[conv_networks_of(cexp) for cexp in CONV_EXPERIMENTS],
    script:
        "../scripts/cifar_figure.py"
