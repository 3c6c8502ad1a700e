"""PSCGAN's networks for a job: loaded from ``sampler.gan.ckpt``, or from the cache keyed by
a hash of the GAN's training config (σ included: one model per data set, operator and σ),
or trained now with Lightning (and cached). Retraining when σ changes is the baseline's cost
that the paper points at: ``train_seconds`` is recorded in metrics.json."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from vsdr.config import instantiate
from vsdr.errors import ConfigError
from vsdr.experiments.cache import NetworkCache
from vsdr.experiments.prior import make_trainer
from vsdr.models.cgan import ConditionalGenerator
from vsdr.models.score import load_state_strict
from vsdr.tasks.images import sigma_in_pm1
from vsdr.training.batches import RandomBatches

log = logging.getLogger(__name__)


def train_sigma(cfg: DictConfig) -> float:
    """The σ the GAN is trained at: ``sampler.gan.train_sigma``, or the job's ``noise.sigma``
    when that is null (set it to apply a GAN trained at one σ to data at another). Both are
    read in ``noise.space`` units and returned in the units the measurements are made in
    (images: ``[−1, 1]``; points: their own)."""
    s = cfg.sampler.gan.get("train_sigma")
    s = float(cfg.noise.sigma) if s is None else float(s)
    if s <= 0:
        raise ConfigError(f"sampler.gan.train_sigma={s:g} must be > 0: PSCGAN learns to denoise")
    return sigma_in_pm1(s, str(cfg.noise.get("space", "data")))


def gan_training_key(cfg: DictConfig) -> dict:
    """Everything that determines the trained GAN (and nothing else)."""
    gan = OmegaConf.to_container(cfg.sampler.gan, resolve=True)
    for k in ("ckpt", "train_sigma"):
        gan.pop(k, None)
    return {"dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
            "operator": OmegaConf.to_container(cfg.operator, resolve=True),
            "n_train": int(cfg.data.n_train), "sigma": train_sigma(cfg), "gan": gan}


def gan_cache(cfg: DictConfig) -> NetworkCache:
    """PSCGAN's cache entry: ``<dataset>-pscgan-<hash of gan_training_key>.pt``."""
    return NetworkCache(str(cfg.paths.cache_dir), f"{cfg.dataset.name}-pscgan", gan_training_key(cfg),
                        label="PSCGAN")


def gan_cache_path(cfg: DictConfig) -> Path:
    return gan_cache(cfg).path


def build_gan(cfg: DictConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The generator ``G(y, z)`` and the critic ``D(x, y)`` of ``sampler.gan`` (their
    ``_target_``s: ``GeneratorMLP`` and ``CriticMLP`` on 2D data, ``GeneratorConv`` and
    ``CriticConv`` on images)."""
    return (instantiate(cfg.sampler.gan.generator, "sampler.gan.generator"),
            instantiate(cfg.sampler.gan.critic, "sampler.gan.critic"))


def train_gan(generator, critic, points, operator, sigma: float, trainer, M: int, gp_weight: float,
              adv_weight: float, lr: float, betas, batch_size: int, steps: int, seed: int,
              ema_decay: float | None = None, penalty: str = "sum") -> float:
    """Train in place on ``points`` with the Lightning ``trainer`` (one pass over ``steps``
    batches); return the wall time in seconds. With ``ema_decay`` set, the generator ends
    holding the moving average of its weights; ``penalty``: the first-moment penalty summed
    (``sum``) or averaged (``mean``) over coordinates."""
    import lightning as L

    from vsdr.training.pscgan_module import PSCGANModule

    module = PSCGANModule(generator, critic, operator, sigma, M=M, gp_weight=gp_weight,
                          adv_weight=adv_weight, lr=lr, betas=tuple(betas), seed=seed,
                          ema_decay=ema_decay, penalty_reduction=penalty)
    batches = RandomBatches(points, batch_size, steps, seed=seed)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, num_workers=0)
    L.seed_everything(seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    if module.generator_ema is not None:
        generator.load_state_dict(module.generator_ema.state_dict())
    return time.perf_counter() - t0


def is_official(cfg: DictConfig) -> bool:
    """``sampler.gan`` is the published PSCGAN (``format: official``): loaded, never trained."""
    return cfg.sampler.gan.get("format") == "official"


def load_official_pscgan(cfg: DictConfig, generator, critic, info: dict,
                         device: torch.device) -> tuple[ConditionalGenerator, dict]:
    """The published PSCGAN from ``sampler.gan.ckpt`` (``gen.*``/``disc.*`` keys, weights-only
    read, strict); its training σ is the checkpoint's ``sigma_255``/255 in ``[0, 1]`` units,
    recorded in ``[−1, 1]`` units as ``train_sigma``."""
    from vsdr.models.pscgan_checkpoint import load_official
    from vsdr.models.pscgan_official import PSCGANOfficial

    ckpt = cfg.sampler.gan.get("ckpt")
    if not ckpt:
        raise ConfigError("sampler.gan.ckpt is not set: the published PSCGAN (gan@sampler.gan=official_ffhq) "
                          "is loaded, never trained: give sampler.gan.ckpt=PATH/pscgan-25.ckpt")
    path = Path(hydra.utils.to_absolute_path(ckpt))
    load_official(PSCGANOfficial(generator.gen, critic), path)
    sigma_255 = float(cfg.sampler.gan.sigma_255)
    info.update(path=str(path), source="sampler.gan.ckpt", sigma_255=sigma_255,
                train_sigma=2 * sigma_255 / 255)
    log.info("PSCGAN: the published denoiser (σ = %g/255) from %s", sigma_255, path)
    return ConditionalGenerator(generator.to(device).eval().requires_grad_(False)), info


def load_or_train_pscgan(cfg: DictConfig, dataset, operator, logger,
                         device: torch.device) -> tuple[ConditionalGenerator, dict]:
    """The job's ``ConditionalGenerator`` and a dict describing where its weights came from."""
    generator, critic = build_gan(cfg)
    info: dict = {"generator_params": sum(p.numel() for p in generator.parameters()),
                  "critic_params": sum(p.numel() for p in critic.parameters())}
    if is_official(cfg):
        return load_official_pscgan(cfg, generator, critic, info, device)
    info["train_sigma"] = train_sigma(cfg)
    pair = torch.nn.ModuleDict({"generator": generator, "critic": critic})
    ckpt = cfg.sampler.gan.get("ckpt")
    if ckpt:
        path = Path(hydra.utils.to_absolute_path(ckpt))
        load_state_strict(pair, path, what="sampler.gan.ckpt")
        info.update(path=str(path), source="sampler.gan.ckpt")
        log.info("PSCGAN: reusing %s", path)
    else:
        if dataset is None and not gan_cache(cfg).exists():
            raise ConfigError(f"dataset={cfg.dataset.name} has no training images (dataset.train_root) "
                              "to train PSCGAN on: give dataset.train_root=FOLDER or sampler.gan.ckpt=PATH")

        def train() -> tuple[torch.nn.Module, float]:
            tr = cfg.sampler.gan.train
            seconds = train_gan(
                generator, critic, dataset.sample(int(cfg.data.n_train), seed=int(tr.seed)), operator,
                train_sigma(cfg),
                make_trainer(cfg.trainer, logger, cfg.progress, steps=int(tr.steps), max_steps=-1,
                             max_epochs=1),
                M=int(tr.M), gp_weight=float(tr.gp_weight), adv_weight=float(tr.adv_weight),
                lr=float(tr.lr), betas=tr.betas, batch_size=int(tr.batch_size), steps=int(tr.steps),
                seed=int(tr.seed), ema_decay=None if tr.get("ema_decay") is None else float(tr.ema_decay),
                penalty=str(tr.get("penalty", "sum")))
            return pair, seconds

        _, where = gan_cache(cfg).load_or_train(pair, train, what="cached PSCGAN checkpoint")
        info.update(where)
    generator = generator.to(device).eval().requires_grad_(False)
    return ConditionalGenerator(generator), info
