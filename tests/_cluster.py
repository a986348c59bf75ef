"""Whether a real SLURM cluster is here for the ``--executor slurm`` tests, and why not.

``.ci/slurm-up`` brings up a one-node cluster as root; ``.ci/run`` calls it and, when it came
up, sets ``KINETIX_TEST_SLURM=required`` so that a cluster that is then unusable fails the
SLURM tests instead of skipping them (CI must prove SLURM works, not quietly skip it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

# Node states in which the one node takes jobs (busy with other runs' jobs counts).
USABLE_STATES = ("idle", "mixed", "allocated", "completing")
# The job shape every SLURM test asks for: it fits the 2-core CI node with room for another.
TEST_SHAPE = ["--slurm-cores", "1", "--slurm-memory", "1GB", "--slurm-walltime", "00:10:00"]


def slurm_unavailable() -> str | None:
    """None when SLURM can run a job here; otherwise one line saying why not and how to fix."""
    if importlib.util.find_spec("dask_jobqueue") is None:
        return "dask-jobqueue is not installed (pip install 'kinetix[dask]')"
    for tool in ("sinfo", "sbatch", "scontrol", "scancel"):
        if shutil.which(tool) is None:
            return f"SLURM's {tool} is not on PATH (as root: .ci/slurm-up)"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s (is slurmctld up? as root: .ci/slurm-up)"
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"sinfo failed: {tail[0]} (as root: .ci/slurm-up)"
    states = [s.strip().rstrip("*~#$@^-") for s in done.stdout.split()]
    if not any(s in USABLE_STATES for s in states):
        return f"no SLURM node takes jobs (sinfo says {', '.join(states) or 'nothing'})"
    return None


def slurm_required() -> bool:
    """True where SLURM was brought up for this run (CI), so its absence is a failure."""
    return os.environ.get("KINETIX_TEST_SLURM") == "required"
