"""The image job (METHOD.md §7): a folder of images, y = A x0 + σ_y n, the score network
(``model.ckpt`` strictly, the cache, or trained now with Lightning), every knob value sampled
with per-sample seeds, MSE/PSNR/LPIPS/FID (stand-ins, labelled, when asked) and an offline
PCA Fréchet distance, the result files of ARCHITECTURE.md §2, an image grid (Fig. 7) and the
DP plot. Chosen by ``run_job`` when the dataset config has ``kind: images``."""
from __future__ import annotations

import logging
import math
import platform
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import vsdr
from vsdr.data.images import ImageFolder, ImageTrainSet
from vsdr.diffusion.noise import STREAM_MEASUREMENT, per_sample_seeds
from vsdr.diffusion.schedule import VPSchedule
from vsdr.errors import ConfigError
from vsdr.experiments.prior import load_or_train_prior
from vsdr.experiments.resume import results_hash
from vsdr.experiments.writer import save_figure, write_csv, write_json, write_npz
from vsdr.metrics.frechet import PatchFrechet, PCAFrechet, chroma
from vsdr.metrics.image import ImageMetrics

log = logging.getLogger(__name__)

#: units σ_y may be given in, and the factor that turns it into [−1, 1] units
SIGMA_SPACES = {"[-1,1]": 1.0, "data": 1.0, "[0,1]": 2.0}
#: columns of an image job's metrics.csv before the perception columns
IMAGE_COLUMNS = ["dataset", "operator", "sigma", "sigma_space", "sampler", "knob", "value",
                 "mse", "psnr"]
#: dataset config keys that are not ``ImageFolder`` arguments
DATASET_META = ("_target_", "name", "kind", "root", "train_root", "generate", "image_size", "limit")


def is_image_config(cfg: DictConfig) -> bool:
    return cfg.dataset.get("kind") == "images"


def _path(p: str) -> Path:
    return Path(hydra.utils.to_absolute_path(str(p)))


def sigma_in_pm1(noise: DictConfig) -> float:
    """``σ_y`` in ``[−1, 1]`` units (the space the images live in); ``noise.space`` says where
    ``noise.sigma`` was given: ``[-1,1]`` (or ``data``) or ``[0,1]`` (doubled)."""
    space = str(noise.get("space", "[-1,1]")).replace(" ", "")
    if space not in SIGMA_SPACES:
        raise ConfigError(f"noise.space={noise.space!r} is not one of {list(SIGMA_SPACES)} for images")
    return float(noise.sigma) * SIGMA_SPACES[space]


def prepare_data(cfg: DictConfig) -> None:
    """Write a generated image set (``dataset.generate``, e.g. the digits) when it is missing."""
    gen = cfg.dataset.get("generate")
    if gen:
        hydra.utils.instantiate(OmegaConf.to_container(gen, resolve=True))


def load_test_images(cfg: DictConfig) -> torch.Tensor:
    """The first ``data.limit`` (or ``dataset.limit``) images of ``dataset.root``."""
    limit = cfg.data.get("limit") or cfg.dataset.get("limit")
    if not cfg.dataset.get("root"):
        raise ConfigError(f"dataset={cfg.dataset.name} needs dataset.root=FOLDER of PNG/JPEG images")
    return ImageFolder(_path(cfg.dataset.root), int(cfg.dataset.image_size), limit=limit).load()


def measure(x0: torch.Tensor, operator, sigma: float, seed: int) -> torch.Tensor:
    """``y = A x0 + σ n`` with image ``j``'s noise drawn from its own seed (so ``data.limit``
    does not change the noise of the images it keeps)."""
    ax0 = operator.forward(x0)
    seeds = per_sample_seeds(seed, range(len(x0)), stream=STREAM_MEASUREMENT)
    n = torch.stack([torch.randn(ax0.shape[1:], generator=torch.Generator().manual_seed(s))
                     for s in seeds]).to(ax0)
    return ax0 + sigma * n


def build_metrics(cfg: DictConfig) -> ImageMetrics:
    opts = OmegaConf.to_container(cfg.get("image_metrics") or {}, resolve=True)
    for k in ("fd_pca_k", "fd_patch", "fd_patch_grey", "chroma", "perception", "min_size"):
        opts.pop(k, None)
    opts.setdefault("device", str(cfg.device) if cfg.device != "auto" else "cpu")
    return ImageMetrics(**opts)


def _nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour ×``factor`` up-sampling: MSE and PSNR are unchanged by it exactly;
    LPIPS's AlexNet needs at least 32 pixels a side."""
    return x if factor == 1 else x.repeat_interleave(factor, -1).repeat_interleave(factor, -2)


def evaluate_images(cfg: DictConfig, x0, recon, values, nfe: int, fd: PCAFrechet | None,
                    metrics: ImageMetrics, workdir: Path) -> list[dict]:
    """One row per knob value: MSE/PSNR on ``[0, 1]`` images, LPIPS/FID (or their stand-ins;
    images under ``image_metrics.min_size`` pixels nearest-up-sampled first), ``fd_pca`` when
    a training set is there, ``fd_patch`` when ``image_metrics.fd_patch`` gives a patch size
    (on the channel mean with ``fd_patch_grey``), ``chroma`` with ``image_metrics.chroma``."""
    opts = cfg.get("image_metrics") or {}
    patch = opts.get("fd_patch")
    fd_patch = PatchFrechet(int(patch), grey=bool(opts.get("fd_patch_grey", False))) if patch else None
    min_size = int((cfg.get("image_metrics") or {}).get("min_size", 32))
    up = max(1, math.ceil(min_size / x0.shape[-1]))
    rows = []
    for value, r in zip(values, recon):
        row = {"dataset": cfg.dataset.name, "operator": cfg.operator.name,
               "sigma": float(cfg.noise.sigma), "sigma_space": str(cfg.noise.space),
               "sampler": cfg.sampler.name, "knob": cfg.sampler.knob, "value": float(value)}
        row.update(metrics(_nearest(x0, up), _nearest(r, up), workdir=workdir))
        if fd is not None:
            row["fd_pca"] = fd(x0, r)
        if fd_patch is not None:
            row["fd_patch"] = fd_patch(x0, r)
        if opts.get("chroma"):
            row["chroma"] = chroma(r)
        row.update(n=len(x0), nfe=nfe, seed=int(cfg.seed))
        rows.append(row)
    return rows


def perception_key(cfg: DictConfig, rows: list[dict]) -> str:
    """The measure on the DP plot's x axis: ``image_metrics.perception`` when finite, else the
    first finite of lpips, fid, fd_patch, fd_pca, then the stand-ins."""
    wanted = (cfg.get("image_metrics") or {}).get("perception")
    keys = [wanted] if wanted else []
    keys += ["lpips", "fid", "fd_patch", "fd_pca", "lpips_standin", "fid_standin"]
    for k in keys:
        if k in rows[0] and all(math.isfinite(float(r[k])) for r in rows):
            return k
    return "mse"


def run_image_job(cfg: DictConfig, job_dir: str | Path) -> list[dict]:
    """Run one image job and write its files into ``job_dir``; return the metrics rows.
    Called by ``run_job`` after it validated ``cfg`` and found no finished results there."""
    from vsdr.experiments.job import (
        _instantiate,
        build_logger,
        finish_logger,
        knob_values,
        resolve_device,
        sample_all,
    )

    t_start = time.perf_counter()
    job_dir = Path(job_dir)
    device = resolve_device(cfg.device)
    if cfg.get("threads"):  # small networks on a loaded CPU: 1 thread can beat 2
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(int(cfg.seed))
    values = knob_values(cfg)
    sigma = sigma_in_pm1(cfg.noise)
    prepare_data(cfg)
    x0 = load_test_images(cfg)
    operator = _instantiate(cfg.operator)
    sampler = _instantiate(cfg.sampler, progress=bool(cfg.progress))
    schedule = VPSchedule.linear(int(cfg.diffusion.T), float(cfg.diffusion.beta_start),
                                 float(cfg.diffusion.beta_end))
    y = measure(x0, operator, sigma, int(cfg.seed))
    train_root = cfg.dataset.get("train_root")
    train = ImageTrainSet(_path(train_root), int(cfg.dataset.image_size)) if train_root else None
    if train is None and not cfg.model.get("ckpt"):
        raise ConfigError(f"dataset={cfg.dataset.name} has no train_root: give model.ckpt=PATH "
                          "of a trained network or dataset.train_root=FOLDER to train one")
    logger = build_logger(cfg, job_dir)
    try:
        model, model_info = load_or_train_prior(cfg, schedule, train, logger, device)
        recon, nfe, sample_seconds = sample_all(cfg, sampler, model, x0, y, operator, values,
                                                schedule, device, sigma=sigma)
        k = int((cfg.get("image_metrics") or {}).get("fd_pca_k", 8))
        fd = PCAFrechet(train.sample(int(cfg.data.n_train)), k) if train is not None else None
        metrics = build_metrics(cfg)
        job_dir.mkdir(parents=True, exist_ok=True)
        rows = evaluate_images(cfg, x0, recon, values, nfe, fd, metrics, job_dir)
        write_image_outputs(cfg, job_dir, rows, x0, y, recon, values, model_info, metrics.notes,
                            {"sample_seconds": sample_seconds,
                             "seconds_per_step": sample_seconds / max(nfe, 1),
                             "wall_seconds": time.perf_counter() - t_start})
        if logger is not None:
            for r in rows:
                logger.log_metrics({f"eval/{r['knob']}={r['value']:g}/{m}": float(r[m])
                                    for m in r if isinstance(r[m], float)})
    finally:
        finish_logger(logger)
    for note in metrics.notes:
        log.warning(note)
    print_image_table(rows)
    return rows


def write_image_outputs(cfg: DictConfig, job_dir: Path, rows: list[dict], x0, y, recon, values,
                        model_info: dict, notes: list[str], timing: dict) -> None:
    """metrics.csv, metrics.json, samples.npz, image_grid.png, dp_curve.{csv,png}."""
    import matplotlib.pyplot as plt

    from vsdr.plotting.dp import plot_dp_curve
    from vsdr.plotting.images import plot_image_grid

    resolved = OmegaConf.to_container(cfg, resolve=True)
    columns = IMAGE_COLUMNS + [c for c in rows[0] if c not in IMAGE_COLUMNS]
    write_csv(job_dir / "metrics.csv", rows, columns)
    perception = perception_key(cfg, rows)
    write_json(job_dir / "metrics.json", {
        "rows": rows, "config": resolved, "config_hash": results_hash(cfg),
        "seed": int(cfg.seed), "nfe": rows[0]["nfe"], "model": model_info, **timing,
        "units": {"mse": "[0, 1] images", "psnr": "dB, data range 1",
                  "sigma": f"{cfg.noise.space} units"},
        "perception": perception, "notes": notes,
        "versions": {"vsdr": vsdr.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    })
    write_npz(job_dir / "samples.npz", x0=x0.numpy(), y=y.numpy(), samples=recon.numpy(),
              values=np.asarray(values), knob=np.asarray(cfg.sampler.knob))
    title = (f"{cfg.dataset.name}, {cfg.operator.name}, σ_y={float(cfg.noise.sigma):g} "
             f"({cfg.noise.space} units), {cfg.sampler.name}")
    fig = plot_image_grid(x0, y, recon, values, cfg.sampler.knob,
                          rows=int((cfg.get("plots") or {}).get("image_rows", 4)), title=title)
    save_figure(fig, job_dir / "image_grid.png")
    plt.close(fig)
    write_csv(job_dir / "dp_curve.csv", rows, columns)
    fig = plot_dp_curve(rows, perception=perception, title=title)
    save_figure(fig, job_dir / "dp_curve.png")
    plt.close(fig)


def print_image_table(rows: list[dict]) -> None:
    """knob value, MSE, PSNR and every perception column on stdout."""
    extra = [c for c in rows[0] if c.startswith(("lpips", "fid", "fd_", "chroma"))]
    print(f"\n{rows[0]['knob']:>8} {'MSE':>10} {'PSNR':>8} " + " ".join(f"{c:>13}" for c in extra))
    for r in rows:
        print(f"{r['value']:>8.3g} {r['mse']:>10.5f} {r['psnr']:>8.2f} "
              + " ".join(f"{float(r[c]):>13.4f}" for c in extra))
