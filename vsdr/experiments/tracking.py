"""Experiment trackers at sweep scale (issue 6): with ``logger=wandb`` every job of a
multirun is its own run, grouped by the sweep (``group`` = the sweep dir, ``name`` = the
job number and its overrides), started when the job starts and finished when it ends,
with exit code 1 (wandb marks the run *failed*) when the job fails."""
from __future__ import annotations

from pathlib import Path


def is_wandb(logger_cfg) -> bool:
    return bool(logger_cfg) and str(logger_cfg.get("_target_", "")).endswith("WandbLogger")


def wandb_run_kwargs(job_dir: str | Path) -> dict:
    """``group``/``name``/``job_type`` for ``wandb.init`` from Hydra's job (none outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {"name": Path(job_dir).name, "job_type": "job"}
    hc = HydraConfig.get()
    if str(hc.mode) == "RunMode.MULTIRUN":
        overrides = ",".join(hc.overrides.task)
        return {"group": str(Path(hc.sweep.dir).resolve()), "job_type": "sweep-job",
                "name": f"{hc.job.num}: {overrides}"[:128]}
    return {"name": Path(hc.runtime.output_dir).name, "job_type": "job"}


def each(logger) -> list:
    """The loggers of ``logger``: ``[]`` for ``None``, the list itself (``logger=many``), or
    ``[logger]``."""
    if logger is None:
        return []
    return list(logger) if isinstance(logger, (list, tuple)) else [logger]


def log_metrics(logger, metrics: dict) -> None:
    """``metrics`` to every logger of ``logger``."""
    for lg in each(logger):
        lg.log_metrics(metrics)


def start(logger) -> None:
    """Create the tracker's run now (wandb creates it lazily), so a job that fails before its
    first metric still shows up, as failed."""
    for lg in each(logger):
        if type(lg).__name__ == "WandbLogger":
            _ = lg.experiment


def finish(logger, ok: bool) -> None:
    """Finalize every logger of ``logger``; for wandb, finish the run (exit code 1 marks it
    failed)."""
    for lg in each(logger):
        lg.finalize("success" if ok else "failed")
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish(exit_code=0 if ok else 1)
