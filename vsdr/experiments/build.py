"""The top of a job: every component built once from the config, by its ``_target_``.

Below this module nothing reads the config: tasks, samplers, the schedule and the metrics
are objects, and the functions that use them take objects and plain values. An unknown key
in a component's config is a ``ConfigError`` naming the key and the component (exit 2),
never swallowed by a constructor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from vsdr.config import instantiate
from vsdr.data.analytic import AnalyticDataset
from vsdr.data.images import ImageDataset
from vsdr.data.toy2d import PointDataset
from vsdr.errors import ConfigError
from vsdr.experiments import tracking
from vsdr.experiments.sources import model_source
from vsdr.experiments.validate import lam_values, sampler_class
from vsdr.metrics.bootstrap import Bootstrap
from vsdr.models.invariant import make_batch_invariant
from vsdr.models.precision import apply_precision
from vsdr.samplers.base import Sampler
from vsdr.tasks import AnalyticTask, ImageTask, PointCloudTask, Task


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible: use device=cpu or auto")
    return torch.device(name)


def apply_threads(threads: int | None, device: torch.device) -> int:
    """Set torch's intra-op threads for a job and return the number in force: ``threads``
    when given, else 1 on CPU (small networks on a shared CPU) and torch's default untouched
    on CUDA."""
    if threads is not None:
        torch.set_num_threads(int(threads))
    elif device.type == "cpu":
        torch.set_num_threads(1)
    return torch.get_num_threads()


def knob_values(cfg: DictConfig) -> list[float]:
    """The traversal values of this job: the top-level ``lam`` for samplers whose knob is λ
    (``Sampler.uses_lam``), otherwise ``sampler.values``."""
    cls = sampler_class(cfg.sampler)
    if cls.uses_lam:
        return lam_values(cfg.lam)
    values = cfg.sampler.get("values")
    if values is None:
        raise ConfigError(f"sampler={cls.name} has knob {cfg.sampler.get('knob')} but no sampler.values")
    return [float(v) for v in values]


def build_bootstrap(cfg: DictConfig) -> Bootstrap | None:
    """The intervals of ``eval.bootstrap`` (MSE resamples; 0: no interval at all),
    ``eval.bootstrap_w2`` (W2 resamples; 0: none), ``eval.interval`` (coverage) and
    ``eval.bootstrap_w2_max_items`` (no W2 interval beyond this many test items)."""
    ev = cfg.eval
    resamples = int(ev.get("bootstrap", 0) or 0)
    if resamples == 0:
        return None
    try:
        return Bootstrap(resamples, int(ev.get("bootstrap_w2", 0) or 0), float(ev.get("interval", 0.95)),
                         int(ev.get("bootstrap_w2_max_items", 2000)))
    except ValueError as e:
        raise ConfigError(f"eval.bootstrap / eval.bootstrap_w2 / eval.interval: {e}") from e


def build_task(cfg: DictConfig) -> Task:
    """The task of ``dataset=``: images for an ``ImageDataset``, a closed-form posterior for
    an ``AnalyticDataset``, point clouds for any other ``PointDataset``."""
    dataset = instantiate(cfg.dataset, "dataset")
    operator = instantiate(cfg.operator, "operator")
    sigma, space = cfg.noise.sigma, str(cfg.noise.get("space", "data"))
    if isinstance(dataset, ImageDataset):
        limit = cfg.data.get("limit")  # data.limit, else dataset.limit
        device = resolve_device(str(cfg.device)).type
        metrics = instantiate(cfg.image_metrics, "image_metrics", device=device)
        ev = cfg.image_eval
        return ImageTask(dataset, operator, sigma, space, metrics,
                         limit=None if limit is None else int(limit), n_train=int(cfg.data.n_train),
                         fd_pca_k=int(ev.fd_pca_k), fd_patch=ev.fd_patch,
                         fd_patch_grey=bool(ev.fd_patch_grey), chroma=bool(ev.chroma),
                         perception=ev.perception, min_size=int(ev.min_size),
                         image_rows=int(cfg.plots.image_rows),
                         samples_per_image=int(cfg.data.get("samples_per_image", 1) or 1),
                         bootstrap=build_bootstrap(cfg))
    if isinstance(dataset, AnalyticDataset):
        return AnalyticTask(dataset, operator, sigma, space, n_test=int(cfg.data.n_test),
                            w2_max_exact=int(cfg.eval.w2_max_exact),
                            kl_max_points=int(cfg.eval.kl_max_points),
                            trajectory_lams=list(cfg.plots.trajectory_lams),
                            trajectories=int(cfg.plots.trajectories), bootstrap=build_bootstrap(cfg))
    if isinstance(dataset, PointDataset):
        return PointCloudTask(dataset, operator, sigma, space, n_test=int(cfg.data.n_test),
                              w2_max_exact=int(cfg.eval.w2_max_exact), bootstrap=build_bootstrap(cfg))
    raise ConfigError(f"dataset={cfg.dataset.get('name')} builds a {type(dataset).__name__}, which is "
                      "neither a PointDataset nor an ImageDataset: vsdr has no task for it")


def build_sampler(cfg: DictConfig, task: Task | None = None) -> Sampler:
    """The sampler of ``sampler=``. A ``sampler.sigma_scale`` left ``null`` (DiffPIR's: the factor
    that puts σ_y into the units its ρ_t is written in) is taken from ``task.sigma_to_01``:
    0.5 on images (σ_y in ``[−1, 1]`` units), 1 on data with no ``[0, 1]`` convention."""
    extra = {}
    if task is not None and "sigma_scale" in cfg.sampler and cfg.sampler.sigma_scale is None:
        extra["sigma_scale"] = float(task.sigma_to_01)
    return instantiate(cfg.sampler, "sampler", progress=bool(cfg.progress), **extra)


def build_schedule(cfg: DictConfig):
    return instantiate(cfg.diffusion, "diffusion")


@dataclass
class JobParts:
    """Everything a job needs, built once from its config."""

    task: Task
    sampler: Sampler
    schedule: object
    values: list[float]
    device: torch.device
    #: the columns every metrics row of the job shares
    base_row: dict
    title: str


def build_job(cfg: DictConfig) -> JobParts:
    """Task, sampler, schedule, knob values and device of ``cfg`` (cheap: nothing is loaded,
    trained or sampled here)."""
    device = resolve_device(cfg.device)
    values = knob_values(cfg)
    task = build_task(cfg)
    sampler = build_sampler(cfg, task)
    schedule = build_schedule(cfg)
    base = {"dataset": cfg.dataset.name, "operator": cfg.operator.name,
            "sigma": float(cfg.noise.sigma), "sigma_space": str(cfg.noise.space),
            "sampler": sampler.name, "knob": sampler.knob}
    label = model_source(cfg).label
    title = (f"{base['dataset']}, {base['operator']}, σ_y={base['sigma']:g} ({base['sigma_space']} "
             f"units), {sampler.name}" + (f", {label}" if label else ""))
    return JobParts(task, sampler, schedule, values, device, base, title)


def build_logger(cfg: DictConfig, job_dir: Path):
    """The Lightning logger of ``logger=``: one logger (a node with a ``_target_``), a list of
    them (``logger=many``: every child node with a ``_target_``, e.g. CSV and wandb together),
    or ``None`` (``logger=none``). Lightning's ``Trainer`` takes either; ``tracking`` handles
    both."""
    node = cfg.get("logger")
    if not node:
        return None
    if "_target_" in node:
        return _one_logger(node, job_dir)
    loggers = [_one_logger(child, job_dir) for child in node.values()
               if isinstance(child, DictConfig) and "_target_" in child]
    return loggers or None


def _one_logger(node: DictConfig, job_dir: Path):
    spec = OmegaConf.to_container(node, resolve=True)
    extra = {}
    if tracking.is_wandb(node):  # its console capture: logger.console (off unless asked)
        extra = {**tracking.wandb_run_kwargs(job_dir),
                 "settings": tracking.wandb_settings(spec.pop("console", None))}
    logger = hydra.utils.instantiate(spec, save_dir=str(job_dir), **extra)  # `name`: the logger's own
    tracking.start(logger)
    return logger


def network_files(cfg: DictConfig) -> list[Path]:
    """The cached network files a job trains when they are missing (its ``ModelSource``'s
    ``files``, without building anything): PSCGAN's networks, or the score network of
    ``score=network``; none when the job loads a given checkpoint, runs a pretrained family or
    a closed-form score. A scheduler of several jobs (``vsdr.experiments.scheduler``) runs one
    trainer per file."""
    return model_source(cfg).files(cfg)


def build_score_model(cfg: DictConfig, parts: JobParts, logger) -> tuple[object, dict]:
    """The model the sampler consumes and a dict saying where it came from, built by the job's
    ``ModelSource`` (``vsdr.experiments.sources``): the ε-network of ``model=``, a closed-form
    score, or the networks a sampler brings (PSCGAN's generator)."""
    return model_source(cfg).build(cfg, parts, logger)


def build_sampling_model(cfg: DictConfig, parts: JobParts, logger) -> tuple[object, dict]:
    """``build_score_model``'s model as a job samples with it: in ``precision=`` (and
    ``channels_last``) and called on ``data.net_batch`` rows at a time (batch-invariant bits)."""
    model, info = build_score_model(cfg, parts, logger)
    model = apply_precision(model, str(cfg.get("precision", "fp32")), bool(cfg.get("channels_last", False)))
    return make_batch_invariant(model, cfg.data.get("net_batch")), info
