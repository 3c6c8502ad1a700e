"""Checks of the command line that must run before Hydra starts (it creates the sweep dir
and the launcher before any vsdr code): each returns the sentence to show, or ``None``."""
from __future__ import annotations

import shutil

#: ``hydra/launcher=`` choices that submit to SLURM
SLURM_LAUNCHERS = ("slurm", "slurm_cpu", "submitit_slurm")
#: what submitit needs on PATH to submit to SLURM
SLURM_COMMANDS = ("sbatch", "srun")


def launcher_problem(argv: list[str]) -> str | None:
    """A multirun with ``hydra/launcher=slurm`` on a machine without SLURM's commands: the
    sentence to show (Hydra would create the sweep dir, then submitit fail with a
    traceback); ``None`` otherwise."""
    if not ("-m" in argv or "--multirun" in argv):
        return None  # a single run ignores the launcher
    choice = next((a.split("=", 1)[1] for a in reversed(argv) if a.startswith("hydra/launcher=")), None)
    if choice not in SLURM_LAUNCHERS:
        return None
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if not missing:
        return None
    return (f"hydra/launcher={choice} needs SLURM, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH on this machine: submit from a SLURM "
            "login node, or run the sweep here with hydra/launcher=local (or without hydra/launcher=)")
