#!/usr/bin/env bash
# Run by Snakemake once, inside this conda environment, right after creating it (--sdm conda).
# Conda runs blank out PYTHONPATH, so point the environment at the project's package with a
# .pth file instead: scripts then import resnet_scaling from this checkout's src/ (edits
# included) without installing it. Snakemake runs this from the workflow's directory.
set -euo pipefail
src="$(pwd)/src"
if [ ! -f "$src/resnet_scaling/__init__.py" ]; then
  echo "post-deploy: $src/resnet_scaling not found; run snakemake from the repository root" >&2
  exit 1
fi
site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$src" > "$site/resnet_scaling_src.pth"
