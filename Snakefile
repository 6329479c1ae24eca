# resnet-scaling: depth-scaling limits of residual networks, regenerated from scratch.
# DAG: data -> train(exp, depth) -> scaling -> limits -> fbsde -> verdict -> figures/report,
# plus init_limits (networks at initialisation). See README.md and docs/design.md.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless a config file is given with --configfile (which would
# otherwise be merged into the default key by key, experiments included). Values given
# with --config apply on top of whichever file is used.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/limits.smk"
include: "workflow/rules/fbsde.smk"
include: "workflow/rules/verdict.smk"
include: "workflow/rules/init_limits.smk"
include: "workflow/rules/notebooks.smk"
include: "workflow/rules/cifar.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/phase_diagram.smk"


rule all:
    default_target: True
    input:
        fixed_outputs(),
        checkpoint_outputs,
        CIFAR_OUTPUTS if CONV_EXPERIMENTS else [],
        TRANSFER_OUTPUTS if config["transfer"]["enabled"] else [],


# Every rule that runs a script or a notebook reruns when the code it runs changes.
attach_code_digests()


# The run's record of itself, run.json in its folder: its config, the code of its last
# invocation, and the files of each final target once an invocation has built it; a gallery
# export checks a run against it (src/resnet_scaling/pedigree.py).
from resnet_scaling.pedigree import config_digest, record_run_start, record_run_success


onstart:
    if _MAIN:
        record_run_start(
            RUN_DIR,
            config["run"],
            config_digest(config, ROOT),
            {
                step.name: getattr(step.params, "code")
                for step in workflow.rules
                if hasattr(step.params, "code")
            },
            ROOT,
        )


onsuccess:
    if _MAIN:
        record_run_success(
            RUN_DIR,
            {
                job.rule.name: list(job.input)
                for job in workflow.dag.targetjobs
                if not job.output
            },
        )
