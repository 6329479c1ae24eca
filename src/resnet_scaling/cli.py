"""The ``resnet-scaling`` command: ``resnet-scaling analyse PATH_OR_GLOB... --map MAP.yaml --out DIR``.

Bad input ends the command with one line naming the file and the key, and exit status 2.
Warnings (what the input cannot support) go to stderr, one line each; each verdict is printed
with the population it describes (which statuses, how many networks, primary or not).
"""

from __future__ import annotations

import argparse
import os
import sys

EXAMPLE = """\
example (examples/train_mlp_resnets.py trains such networks into checkpoints/ and runs it):
  resnet-scaling analyse 'checkpoints/mlp_L*_seed*.pt' --map examples/maps/mlp_modulelist.yaml --out analysis/

with the map examples/maps/mlp_modulelist.yaml:
  name: mlp_resnet
  files: 'mlp_L(?P<depth>\\d+)_seed(?P<seed>\\d+)\\.pt$'
  layout: column                   # nn.Linear: y = W x
  tensors:
    A: 'blocks\\.(?P<block>\\d+)\\.linear\\.weight'
    b: 'blocks\\.(?P<block>\\d+)\\.linear\\.bias'
    delta: 'blocks\\.(?P<block>\\d+)\\.delta'

One file per network (several files at one depth are its seeds), at three depths or more.
Two-matrix blocks h + δ V σ(W h + b): map W and V instead of A. A multiplier that lives in
forward() (h + tanh(linear(h))/L): branch_scale: 1/L (or 1/sqrt(L), or a number).
Writes exponents.csv, regimes.csv, statistics.csv, networks.csv, figures/ and report.md/.html.
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="resnet-scaling",
        description="Depth-scaling analysis of residual networks (docs/maths.md §3).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    analyse = commands.add_parser(
        "analyse", help="scaling exponents and regime of trained ResNets at several depths",
        description="Scaling exponents with seed-bootstrap intervals and the regime (ODE, SDE, ODE with rough "
                    "weights, neither) of trained ResNets at several depths, from .npz, PyTorch state_dict "
                    "or .safetensors files, through a declarative map of their tensors.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    analyse.add_argument("paths", nargs="+", metavar="PATH_OR_GLOB", help="checkpoint files or glob patterns")
    analyse.add_argument("--map", required=True, metavar="MAP.yaml", help="which tensors play A_k, b_k, δ_k")
    analyse.add_argument("--out", required=True, metavar="DIR", help="folder for the tables, figures and report")
    analyse.add_argument("--threads", type=int, default=1, metavar="N",
                         help="threads of torch and of the linear algebra (default 1: on a loaded machine more "
                              "threads make the operator norms of convolutions tens of times slower)")
    return top


def limit_threads(n: int) -> None:
    """Every thread pool of the analysis to ``n`` threads: OpenMP and BLAS through the environment
    (read when numpy and torch load), torch's intra-op pool directly."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(n)
    import torch

    torch.set_num_threads(n)


def verdict_line(r) -> str:
    """One regime row in words, with the population it is the verdict of: which statuses, how
    many networks of each, and whether it is the experiment's primary verdict."""
    population = str(r.get("population", "") or "all")
    members = ", ".join(f"{n} {s}" for s, n in (x.split(":") for x in str(r.get("members", "")).split("; ")
                                                    if ":" in x))
    role = "primary verdict" if str(r.get("primary", True)).lower() in ("true", "1") else "secondary verdict"
    head = f"{r['experiment']} [{population} networks{': ' + members if members else ''}; {role}]"
    support = f" (support {r['support']:.0%})" if r["support"] == r["support"] else ""
    if r["exponent"] != r["exponent"]:
        note = str(r.get("population_note", "") or r.get("note", "") or "")
        return f"{head}: {r['regime']}{'; ' + note if note else ''}"
    return (f"{head}: {r['regime']}{support}; exponent of {r['quantity']} ({r['exponent_statistic']}) "
            f"{r['exponent']:.3f} [{r['exponent_ci_low']:.3f}, {r['exponent_ci_high']:.3f}]; "
            f"{int(r['n_depths'])} depths x {int(r['n_seeds'])} seeds")


def main(argv=None) -> int:
    """Run the command; returns the exit status."""
    top = parser()
    args = top.parse_args(argv)
    if args.threads < 1:
        top.error(f"--threads: {args.threads} must be at least 1")
    limit_threads(args.threads)
    from .analyse import AnalyseError, analyse
    from .analyse.readers import plain

    try:
        _, regimes = analyse(args.paths, args.map, args.out)
    except AnalyseError as exc:
        print(f"resnet-scaling analyse: error: {plain(str(exc))}", file=sys.stderr)
        return 2
    for warning in regimes.attrs.get("warnings", []):
        print(f"resnet-scaling analyse: warning: {warning}", file=sys.stderr)
    for _, r in regimes.iterrows():
        print(verdict_line(r))
    print(regimes.attrs["depth_note"])
    print(f"tables, figures and report.html in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
