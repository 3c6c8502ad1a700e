"""One job: validate, build the pieces from config, sample every knob value in one batch,
evaluate, write the result files (ARCHITECTURE.md §2)."""
from __future__ import annotations

import logging
import platform
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import vsdr
from vsdr.diffusion.noise import per_sample_seeds
from vsdr.diffusion.schedule import VPSchedule
from vsdr.errors import ConfigError
from vsdr.experiments.prior import config_hash, load_or_train_prior
from vsdr.experiments.validate import lam_values, validate_config
from vsdr.experiments.writer import save_figure, write_csv, write_json, write_npz
from vsdr.metrics.distortion import mse
from vsdr.metrics.w2 import empirical_w2
from vsdr.plotting.dp import plot_dp_curve
from vsdr.plotting.points import plot_reconstructions

log = logging.getLogger(__name__)

#: columns of metrics.csv, in order (others follow)
COLUMNS = ["dataset", "operator", "sigma", "sigma_space", "sampler", "knob", "value", "mse",
           "w2", "w2_estimator", "n", "nfe", "seed"]

#: noise streams of a job: test points, measurement noise, sampler noise (per sample)
STREAM_TEST, STREAM_MEASUREMENT, STREAM_SAMPLER = 1, 2, 3


#: config keys that describe a component to vsdr and are not constructor arguments
#: (`gan`: PSCGAN's networks and training, read by vsdr.experiments.pscgan)
META_KEYS = ("name", "knob", "values", "needs_positive_sigma", "gan")


def _instantiate(node: DictConfig, drop: tuple[str, ...] = META_KEYS, **kwargs):
    cfg = OmegaConf.to_container(node, resolve=True)
    for k in drop:
        cfg.pop(k, None)
    return hydra.utils.instantiate(cfg, **kwargs)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible: use device=cpu or auto")
    return torch.device(name)


def make_measurements(cfg: DictConfig, dataset, operator) -> tuple[torch.Tensor, torch.Tensor]:
    """Test points ``x0`` (drawn from the job seed) and ``y = A x0 + σ n``."""
    n, seed = int(cfg.data.n_test), int(cfg.seed)
    x0 = dataset.sample(n, seed=per_sample_seeds(seed, [0], stream=STREAM_TEST)[0])
    g = torch.Generator().manual_seed(per_sample_seeds(seed, [0], stream=STREAM_MEASUREMENT)[0])
    ax0 = operator.forward(x0)
    y = ax0 + float(cfg.noise.sigma) * torch.randn(ax0.shape, generator=g)
    return x0, y


def build_logger(cfg: DictConfig, job_dir: Path):
    """The Lightning logger of ``logger=`` (``None`` for ``logger=none``)."""
    if not cfg.get("logger") or "_target_" not in cfg.logger:
        return None
    return _instantiate(cfg.logger, save_dir=str(job_dir))


def knob_values(cfg: DictConfig) -> list[float]:
    """The traversal values of this job: top-level ``lam`` for samplers whose knob is λ,
    otherwise ``sampler.values`` (ζ for DPS, N or σ_z for PSCGAN, s for interpolation)."""
    if cfg.sampler.knob == "lam":
        return lam_values(cfg.lam)
    values = cfg.sampler.get("values")
    if values is None:
        raise ConfigError(f"sampler={cfg.sampler.name} has knob {cfg.sampler.knob} but no sampler.values")
    return [float(v) for v in values]


def build_score_model(cfg: DictConfig, schedule: VPSchedule, dataset, logger,
                      device: torch.device):
    """The score model the sampler consumes, and a dict saying where it came from
    (PSCGAN, whose sampler config has a ``gan`` node: its trained generator instead)."""
    if cfg.sampler.get("gan") is not None:
        from vsdr.experiments.pscgan import load_or_train_pscgan

        return load_or_train_pscgan(cfg, dataset, _instantiate(cfg.operator), logger, device)
    return load_or_train_prior(cfg, schedule, dataset, logger, device)


def sample_all(cfg: DictConfig, sampler, model, x0, y, operator, values, schedule, device):
    """Every knob value side by side in one batch; test point ``j`` has the same seed for
    every value. Returns reconstructions ``(len(values), n, ...)``, nfe and seconds."""
    n = len(x0)
    seeds = per_sample_seeds(int(cfg.seed), range(n), stream=STREAM_SAMPLER)
    knob = torch.tensor(values, dtype=torch.float64).repeat_interleave(n)
    y_all = y.repeat(len(values), *([1] * (y.dim() - 1))).to(device)
    t0 = time.perf_counter()
    result = sampler(model, y_all, operator, float(cfg.noise.sigma), knob, seeds * len(values),
                     schedule)
    seconds = time.perf_counter() - t0
    recon = result.samples.detach().cpu().reshape(len(values), n, *x0.shape[1:])
    if not torch.isfinite(recon).all():
        raise FloatingPointError("the sampler produced non-finite values")
    return recon, result.nfe, seconds


def evaluate(cfg: DictConfig, x0, recon, values, nfe: int) -> list[dict]:
    """One metrics row per knob value (columns of ``COLUMNS``)."""
    rows = []
    for value, r in zip(values, recon):
        w2, estimator = empirical_w2(r.numpy(), x0.numpy(), int(cfg.eval.w2_max_exact),
                                     seed=int(cfg.seed))
        rows.append({
            "dataset": cfg.dataset.name, "operator": cfg.operator.name,
            "sigma": float(cfg.noise.sigma), "sigma_space": cfg.noise.space,
            "sampler": cfg.sampler.name, "knob": cfg.sampler.knob, "value": value,
            "mse": mse(x0, r), "w2": w2, "w2_estimator": estimator, "n": len(x0),
            "nfe": nfe, "seed": int(cfg.seed),
        })
    return rows


def run_job(cfg: DictConfig, job_dir: str | Path) -> list[dict]:
    """Run one job and write its files into ``job_dir``; return the metrics rows."""
    t_start = time.perf_counter()
    job_dir = Path(job_dir)
    validate_config(cfg)
    device = resolve_device(cfg.device)
    torch.manual_seed(int(cfg.seed))
    values = knob_values(cfg)

    dataset = _instantiate(cfg.dataset)
    operator = _instantiate(cfg.operator)
    sampler = _instantiate(cfg.sampler, progress=bool(cfg.progress))
    schedule = VPSchedule.linear(int(cfg.diffusion.T), float(cfg.diffusion.beta_start),
                                 float(cfg.diffusion.beta_end))
    logger = build_logger(cfg, job_dir)
    try:
        model, model_info = build_score_model(cfg, schedule, dataset, logger, device)
        x0, y = make_measurements(cfg, dataset, operator)
        recon, nfe, sample_seconds = sample_all(cfg, sampler, model, x0, y, operator, values,
                                                schedule, device)
        rows = evaluate(cfg, x0, recon, values, nfe)
        write_outputs(cfg, job_dir, rows, x0, y, recon, values, model_info,
                      {"sample_seconds": sample_seconds,
                       "wall_seconds": time.perf_counter() - t_start})
        if logger is not None:
            for r in rows:
                logger.log_metrics({f"eval/{r['knob']}={r['value']:g}/mse": r["mse"],
                                    f"eval/{r['knob']}={r['value']:g}/w2": r["w2"]})
    finally:
        finish_logger(logger)
    print_table(rows)
    return rows


def finish_logger(logger) -> None:
    if logger is None:
        return
    logger.finalize("success")
    if type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


def write_outputs(cfg: DictConfig, job_dir: Path, rows: list[dict], x0, y, recon, values,
                  model_info: dict, timing: dict) -> None:
    """metrics.csv, metrics.json, samples.npz, reconstructions.png, dp_curve.{csv,png}."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    write_csv(job_dir / "metrics.csv", rows, COLUMNS)
    write_json(job_dir / "metrics.json", {
        "rows": rows, "config": resolved, "config_hash": config_hash(resolved),
        "seed": int(cfg.seed), "nfe": rows[0]["nfe"], "model": model_info, **timing,
        "versions": {"vsdr": vsdr.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    })
    write_npz(job_dir / "samples.npz", x0=x0.numpy(), y=y.numpy(), samples=recon.numpy(),
              values=np.asarray(values), knob=np.asarray(cfg.sampler.knob))
    title = (f"{cfg.dataset.name}, {cfg.operator.name}, σ={float(cfg.noise.sigma):g} "
             f"({cfg.noise.space} units), {cfg.sampler.name}")
    import matplotlib.pyplot as plt

    fig = plot_reconstructions(x0.numpy(), y.numpy(), [r.numpy() for r in recon], values,
                               cfg.sampler.knob, title=title)
    save_figure(fig, job_dir / "reconstructions.png")
    plt.close(fig)
    write_csv(job_dir / "dp_curve.csv", rows, COLUMNS)
    fig = plot_dp_curve(rows, title=title)
    save_figure(fig, job_dir / "dp_curve.png")
    plt.close(fig)


def print_table(rows: list[dict]) -> None:
    """λ, MSE, W2 table on stdout, with MSE(λ=1)/MSE(λ=0) when both are there."""
    knob = rows[0]["knob"]
    print(f"\n{knob:>8} {'MSE':>10} {'W2':>10}")
    for r in rows:
        print(f"{r['value']:>8.3g} {r['mse']:>10.4f} {r['w2']:>10.4f}")
    by_value = {float(r["value"]): r["mse"] for r in rows}
    if knob == "lam" and 0.0 in by_value and 1.0 in by_value and by_value[0.0] > 0:
        print(f"MSE(λ=1)/MSE(λ=0) = {by_value[1.0] / by_value[0.0]:.3f}")
