#!/usr/bin/env bash
# Installs a single-node Slurm (Debian 12: Slurm 22.05) and munge for the opt-in end-to-end
# test tests/test_slurm_real.py, which starts and stops the daemons itself. Needs root and
# apt. The package scripts leave the services stopped (no systemd in CI containers); the
# munge postinst creates /etc/munge/munge.key. Run the test with RESNET_SCALING_REAL_SLURM=1.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install_slurm.sh: needs root (apt-get install)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  slurmctld slurmd slurm-client munge >/dev/null
for tool in slurmctld slurmd munged sbatch squeue sinfo scontrol; do
  command -v "$tool" >/dev/null || { echo "install_slurm.sh: $tool missing after install" >&2; exit 1; }
done
echo "installed: $(dpkg-query -W -f '${Package} ${Version} ' slurmctld slurmd slurm-client munge)"
