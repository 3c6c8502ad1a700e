"""The score network of a job: loaded from ``model.ckpt``, or from the cache keyed by the
training config's hash, or trained now (and cached)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from vsdr.config import instantiate, target_of
from vsdr.console import quiet_logs, training_progress
from vsdr.diffusion.schedule import VPSchedule
from vsdr.errors import DDPWorkerDone
from vsdr.experiments.cache import NetworkCache
from vsdr.experiments.lock import env_rank
from vsdr.models.precondition import PreconditionedEps
from vsdr.models.random_init import unzero
from vsdr.models.score import NetworkPrior, load_state_strict
from vsdr.training.batches import RandomBatches

log = logging.getLogger(__name__)

#: keys of ``model=`` that are not the network's constructor arguments and do not change the
#: trained weights: where to load them from (and where that file is published), how many
#: rows one network call takes, and a pretrained family's schedule (``model.schedule``, which
#: ``diffusion`` points at: conf/model/diffusers.yaml)
MODEL_META = ("ckpt", "net_batch", "file", "published", "schedule")


#: the model presets, ``conf/model/<name>.yaml``
MODEL_PRESETS = Path(__file__).resolve().parents[2] / "conf" / "model"


def bare_network(name: str, image_size: int | None = None) -> torch.nn.Module:
    """The network of the preset ``conf/model/<name>.yaml`` as built before any training or
    loading: no checkpoint, no preconditioning wrapper (its weights come from torch's current
    random state); ``image_size`` builds it at another size. For checks that need the
    architecture without a job (checkpoint keys, speed, precision)."""
    cfg = OmegaConf.to_container(OmegaConf.load(MODEL_PRESETS / f"{name}.yaml"))
    for k in (*MODEL_META, "preconditioning"):
        cfg.pop(k, None)
    if image_size:
        cfg["image_size"] = int(image_size)
    return instantiate(cfg, "model")


def random_network(name: str, image_size: int | None = None, seed: int = 0) -> torch.nn.Module:
    """``bare_network`` with weights drawn from ``seed`` and the zero-initialised output layers
    re-initialised (``vsdr.models.random_init.unzero``), so that its outputs vary: speed and
    precision checks without a checkpoint."""
    torch.manual_seed(seed)
    return unzero(bare_network(name, image_size), seed=seed)


def training_key(cfg: DictConfig) -> dict:
    """Everything that determines the trained weights (and nothing else)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    for k in MODEL_META:
        model.pop(k, None)
    key = {
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
        "n_train": int(cfg.data.n_train),
        "model": model,
        "diffusion": OmegaConf.to_container(cfg.diffusion, resolve=True),
        "train": OmegaConf.to_container(cfg.train, resolve=True),
        "max_steps": int(cfg.trainer.max_steps),
    }
    if cfg.trainer.get("strategy") not in (None, "auto"):  # DDP: each step sees world_size batches
        key["distributed"] = {k: str(cfg.trainer.get(k)) for k in ("strategy", "devices", "num_nodes")}
    return key


def build_network(cfg: DictConfig, schedule: VPSchedule) -> torch.nn.Module:
    """The ε-network of ``model=``, wrapped in ``PreconditionedEps`` when
    ``model.preconditioning`` is set."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    for k in MODEL_META:
        model_cfg.pop(k, None)
    precond = model_cfg.pop("preconditioning", None)
    net = instantiate(model_cfg, "model")
    if precond:
        net = PreconditionedEps(net, schedule.alpha_bars, sigma_data=precond["sigma_data"])
    return net


def network_cache(cfg: DictConfig) -> NetworkCache:
    """The score network's cache entry: ``<dataset>-<model>-<hash of training_key>.pt``."""
    return NetworkCache(str(cfg.paths.cache_dir), f"{cfg.dataset.name}-{cfg.model.name}",
                        training_key(cfg), label="score network")


def cache_path(cfg: DictConfig) -> Path:
    return network_cache(cfg).path


def is_pretrained(cfg: DictConfig) -> bool:
    """``model=`` is a pretrained family (its class sets ``pretrained = True``, e.g.
    ``model=diffusers``): built with its weights, never trained or cached."""
    return bool(getattr(target_of(cfg.model, "model"), "pretrained", False))


def make_trainer(trainer: DictConfig, logger, progress: bool, steps: int | None = None, **overrides):
    """The Lightning ``Trainer`` of ``trainer=`` (``overrides`` replace its keys); ``logger``: one
    Lightning logger, a list of them or ``None``. ``steps``: the training steps, for how often the
    progress bar refreshes when not on a terminal (default ``max_steps``)."""
    import lightning  # noqa: F401 - loaded only here, for training; then its handlers go
    quiet_logs()
    node = {**OmegaConf.to_container(trainer, resolve=True), **overrides}
    steps = int(node.get("max_steps", -1)) if steps is None else int(steps)
    bars = training_progress(bool(progress), steps)
    return hydra.utils.instantiate(node, logger=logger if logger is not None else False,
                                   enable_progress_bar=bool(bars), callbacks=bars)


def train_network(net: torch.nn.Module, schedule: VPSchedule, points: torch.Tensor, trainer,
                  lr: float, ema_decay: float, batch_size: int, steps: int,
                  seed: int) -> tuple[torch.nn.Module, float]:
    """Train ``net`` by denoising score matching on ``points`` with the Lightning ``trainer``
    (``steps`` batches of ``batch_size``, drawn from ``seed``); return the EMA network and the
    wall time in seconds."""
    import lightning as L

    from vsdr.training.score_module import ScoreMatchingModule

    module = ScoreMatchingModule(net, schedule, lr=lr, ema_decay=ema_decay, seed=seed)
    batches = RandomBatches(points, batch_size, steps, seed=seed)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, num_workers=0)
    L.seed_everything(seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    if trainer.global_rank != 0:  # DDP worker: rank 0 caches the network and runs the job
        log.info("vsdr: DDP rank %d finished training, exiting", trainer.global_rank)
        raise DDPWorkerDone(f"DDP rank {trainer.global_rank} finished training")
    return module.ema, time.perf_counter() - t0


def slurm_worker_rank(trainer: DictConfig) -> int:
    """The rank of this process among the tasks of a SLURM job step that runs a DDP
    ``trainer`` (``SLURM_PROCID`` when ``SLURM_NTASKS`` > 1), else 0."""
    if trainer.get("strategy") in (None, "auto") or int(os.environ.get("SLURM_NTASKS", "1") or 1) < 2:
        return 0
    return int(os.environ.get("SLURM_PROCID", "0") or 0)


def ddp_worker_rank(trainer: DictConfig) -> int:
    """This process's rank among the DDP processes of a DDP ``trainer`` (0 outside DDP): the
    SLURM task's (``slurm_worker_rank``), or the ``RANK`` / ``LOCAL_RANK`` / ``NODE_RANK`` that
    Lightning and torchrun give the processes they start."""
    if trainer.get("strategy") in (None, "auto"):
        return 0
    return max(slurm_worker_rank(trainer), env_rank())


def load_or_train_prior(cfg: DictConfig, schedule: VPSchedule, dataset, logger,
                        device: torch.device) -> tuple[NetworkPrior, dict]:
    """The job's ``NetworkPrior`` and a dict describing where its weights came from."""
    net = build_network(cfg, schedule)
    info: dict = {"params": sum(p.numel() for p in net.parameters())}
    if is_pretrained(cfg):
        info.update(source="pretrained", **getattr(net, "info", {}))
    elif cfg.model.get("ckpt"):
        load_state_strict(net, hydra.utils.to_absolute_path(cfg.model.ckpt))
        info.update(source="model.ckpt", path=str(cfg.model.ckpt))
    else:
        cache = network_cache(cfg)
        rank = slurm_worker_rank(cfg.trainer)
        if rank and cache.exists():  # nothing to train: rank 0 alone runs the job
            log.info("vsdr: DDP rank %d: the network is cached, nothing to do", rank)
            raise DDPWorkerDone(f"DDP rank {rank} has nothing to train")

        def train() -> tuple[torch.nn.Module, float]:
            tr = cfg.train
            points = dataset.sample(int(cfg.data.n_train), seed=int(tr.seed))
            return train_network(
                net, schedule, points, make_trainer(cfg.trainer, logger, cfg.progress),
                lr=tr.lr, ema_decay=tr.ema_decay, batch_size=int(tr.batch_size),
                steps=int(cfg.trainer.max_steps), seed=int(tr.seed))

        net, where = cache.load_or_train(net, train)
        info.update(where)
    net = net.to(device).eval().requires_grad_(False)
    return NetworkPrior(net, schedule), info
