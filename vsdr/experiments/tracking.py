"""Experiment trackers at sweep scale: with ``logger=wandb`` every job of a multirun is its
own run, grouped by the sweep (``group`` = the sweep dir, ``name`` = the job number and its
overrides), started when the job starts and finished when it ends, with exit code 1 (wandb
marks the run *failed*) when the job fails.

What a job tells its loggers: the resolved config as hyper-parameters (``log_config``) and
one ``eval/KNOB=VALUE/COLUMN`` value per result of each metrics row (``log_results``; CSV: a
metric, and only when the job trained a network: ``vsdr/experiments/csv_logger.py``). A wandb
run holds those keys in its summary (the runs table of a sweep compares them across runs),
the DP rows as the table ``dp_table`` (the columns of metrics.csv), one history step per knob
value (``dp/KNOB`` with ``dp/mse``, ``dp/w2``, … plotted against it) and the job's PNG figures
as images ``figures/NAME``. Its console is not captured unless
``logger.console`` asks (``wrap``, ``redirect``): the run holds what the job logged, not
progress bars."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def is_wandb_logger(lg) -> bool:
    return type(lg).__name__ == "WandbLogger"


def wandb_settings(console: str | None):
    """``wandb.Settings`` with console capture ``console`` (``"off"`` when ``None``)."""
    import wandb

    return wandb.Settings(console=str(console or "off"))


def log_config(logger, config: dict) -> None:
    """The resolved config as every logger's hyper-parameters (wandb: the run's config;
    CSV: ``hparams.yaml``)."""
    for lg in each(logger):
        lg.log_hyperparams(config)


#: numeric columns of a metrics row that are settings, not results (the config holds them)
SETTINGS = ("value", "sigma", "n", "nfe", "seed")


def numbers(row: Mapping) -> dict[str, float]:
    """The numeric result columns of a metrics row (not ``SETTINGS``, not bools)."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in SETTINGS}


def eval_keys(rows: Sequence[Mapping]) -> dict[str, float]:
    """``eval/KNOB=VALUE/COLUMN`` for each number of each row: a key per knob value, so a sweep
    compares runs on the same λ."""
    return {f"eval/{r['knob']}={float(r['value']):g}/{k}": v for r in rows for k, v in numbers(r).items()}


def log_results(logger, rows: Sequence[Mapping], columns: Sequence[str],
                figures: Mapping[str, str | Path] | None = None) -> None:
    """A finished job's results to every logger: the ``eval/…`` metrics; on wandb also the DP
    table, the history per knob value, the summary keys and ``figures`` (name → PNG). A
    logger that is not ``started`` (``TrainingCSVLogger`` of a job whose network came from the
    cache) gets nothing: its folder would hold only a copy of ``metrics.csv``."""
    keys = eval_keys(rows)
    for lg in each(logger):
        if not getattr(lg, "started", True):  # logger=csv of a job that trained nothing: no folder
            continue
        if not is_wandb_logger(lg):
            lg.log_metrics(keys)
            continue
        import wandb

        run = lg.experiment
        knob = f"dp/{rows[0]['knob']}"
        run.define_metric(knob)
        run.define_metric("dp/*", step_metric=knob)
        for r in sorted(rows, key=lambda r: float(r["value"])):
            run.log({knob: float(r["value"]), **{f"dp/{k}": v for k, v in numbers(r).items()}})
        table = wandb.Table(columns=list(columns), allow_mixed_types=True,
                            data=[[r.get(c, "") for c in columns] for r in rows])
        run.log({"dp_table": table, **{f"figures/{name}": wandb.Image(str(path))
                                        for name, path in (figures or {}).items()}})
        run.summary.update(keys)


def start(logger) -> None:
    """Create the tracker's run now (wandb creates it lazily), so a job that fails before its
    first metric still shows up, as failed."""
    for lg in each(logger):
        if is_wandb_logger(lg):
            _ = lg.experiment


def finish(logger, ok: bool) -> None:
    """Finalize every logger of ``logger``; for wandb, finish the run (exit code 1 marks it
    failed)."""
    for lg in each(logger):
        lg.finalize("success" if ok else "failed")
        if is_wandb_logger(lg):
            import wandb

            wandb.finish(exit_code=0 if ok else 1)
