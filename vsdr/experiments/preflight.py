"""Checks of the command line that must run before Hydra starts (it creates the sweep dir
and the launcher before any vsdr code): each returns the sentence to show, or ``None``."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

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
    if missing:
        return (f"hydra/launcher={choice} needs SLURM, but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not on PATH on this machine: submit from a "
                "SLURM login node, or run the sweep here with hydra/launcher=local (or without "
                "hydra/launcher=)")
    gpus = gpus_asked(argv) if choice == "slurm" else 0
    if gpus > 0:
        partition = os.environ.get("VSDR_SLURM_PARTITION")
        gres = cluster_gres(partition)
        if gres is not None and not any("gpu" in g for g in gres):
            where = f"partition {partition}" if partition else "this cluster"
            return (f"hydra/launcher=slurm asks for {gpus} GPU(s) per node but {where} offers "
                    f"none (sinfo lists its generic resources as {', '.join(sorted(set(gres))) or 'empty'}): "
                    "use hydra/launcher=slurm_cpu, or hydra.launcher.gpus_per_node=0")
    return None


def preset_gpus(launcher: str = "slurm") -> int:
    """``gpus_per_node`` of the preset ``conf/hydra/launcher/<launcher>.yaml`` (0 if unset)."""
    import yaml

    path = Path(__file__).resolve().parents[2] / "conf" / "hydra" / "launcher" / f"{launcher}.yaml"
    return int((yaml.safe_load(path.read_text()) or {}).get("gpus_per_node") or 0)


def gpus_asked(argv: list[str]) -> int:
    """GPUs per node of ``hydra/launcher=slurm``: ``hydra.launcher.gpus_per_node=`` if given,
    else the preset's (``preset_gpus``)."""
    given = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.launcher.gpus_per_node=")]
    try:
        return int(given[-1]) if given else preset_gpus()
    except ValueError:
        return preset_gpus()


def cluster_gres(partition: str | None = None) -> list[str] | None:
    """The generic resources (``sinfo -o %G``) of the cluster's partitions (or of one), one entry
    per line; ``None`` when ``sinfo`` cannot tell (then nothing is checked)."""
    cmd = ["sinfo", "-h", "-o", "%G"] + (["-p", partition] if partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]
