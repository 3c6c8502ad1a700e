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
from vsdr.diffusion.noise import STREAM_MEASUREMENT, STREAM_SAMPLER, STREAM_TEST, per_sample_seeds
from vsdr.diffusion.schedule import VPSchedule
from vsdr.errors import ConfigError, JobFault
from vsdr.experiments import tracking
from vsdr.experiments.analytic import (
    build_exact_score,
    evaluate_analytic,
    is_analytic,
    make_oracle,
    write_analytic_figures,
)
from vsdr.experiments.prior import load_or_train_prior
from vsdr.experiments.resume import ChunkStore, finished_rows, results_hash
from vsdr.experiments.shards import item_rows, shard_indices
from vsdr.experiments.validate import lam_values, validate_config
from vsdr.experiments.writer import ensure_writable, save_figure, write_csv, write_json, write_npz
from vsdr.metrics.distortion import mse
from vsdr.metrics.w2 import empirical_w2
from vsdr.models.invariant import make_batch_invariant
from vsdr.plotting.dp import plot_dp_curve
from vsdr.plotting.points import plot_reconstructions

log = logging.getLogger(__name__)

#: columns of metrics.csv, in order (others follow)
COLUMNS = ["dataset", "operator", "sigma", "sigma_space", "sampler", "knob", "value", "mse",
           "w2", "w2_estimator", "n", "nfe", "seed"]
#: extra columns on data with a closed-form posterior
ANALYTIC_COLUMNS = ["mmse", "mse_opt", "kl"]



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
    extra = tracking.wandb_run_kwargs(job_dir) if tracking.is_wandb(cfg.logger) else {}
    # `name` is the logger's own argument here (the CSV sub-folder), not a vsdr meta key
    logger = _instantiate(cfg.logger, drop=(), save_dir=str(job_dir), **extra)
    tracking.start(logger)
    return logger


def knob_values(cfg: DictConfig) -> list[float]:
    """The traversal values of this job: top-level ``lam`` for samplers whose knob is λ,
    otherwise ``sampler.values`` (ζ for DPS, N or σ_z for PSCGAN, s for interpolation)."""
    if cfg.sampler.knob == "lam":
        return lam_values(cfg.lam)
    values = cfg.sampler.get("values")
    if values is None:
        raise ConfigError(f"sampler={cfg.sampler.name} has knob {cfg.sampler.knob} but no sampler.values")
    return [float(v) for v in values]


def build_score_model(cfg: DictConfig, schedule: VPSchedule, dataset, operator, logger,
                      device: torch.device):
    """The score model the sampler consumes (``score=network``: the trained ε-network;
    ``exact_prior`` / ``exact_posterior``: closed forms; PSCGAN, whose sampler config has a
    ``gan`` node: its trained generator), and a dict saying where it came from."""
    if cfg.sampler.get("gan") is not None:
        from vsdr.experiments.pscgan import load_or_train_pscgan

        return load_or_train_pscgan(cfg, dataset, operator, logger, device)
    if cfg.score.name == "network":
        return load_or_train_prior(cfg, schedule, dataset, logger, device)
    return build_exact_score(cfg, dataset, operator, schedule)


def sample_all(cfg: DictConfig, sampler, model, x0, y, operator, values, schedule, device,
               indices=None, store: ChunkStore | None = None, sigma: float | None = None):
    """Every knob value side by side; test point ``j`` (global index ``indices[p]``) has the
    same seed for every value, in every chunk and shard. The points are sampled in chunks of
    ``data.batch_size`` (null: all at once); with a ``store``, finished chunks are saved and
    reloaded on a rerun. ``sigma``: σ_y in the units of ``y`` (default ``noise.sigma``).
    Returns reconstructions ``(len(values), n, ...)``, the nfe of one chain (every chunk runs
    the same chain) and the seconds spent sampling."""
    n = len(x0)
    sigma = float(cfg.noise.sigma) if sigma is None else float(sigma)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    size = int(cfg.data.get("batch_size") or 0) or n
    chunks, nfe, t0, reused = [], 0, time.perf_counter(), 0
    for p0 in range(0, n, size):
        p1 = min(n, p0 + size)
        start, stop = int(indices[p0]), int(indices[p1 - 1]) + 1
        saved = store.load(start, stop) if store is not None and size < n else None
        if saved is not None:
            chunks.append(saved[0])
            nfe = max(nfe, saved[1])
            reused += 1
            continue
        m = p1 - p0
        seeds = per_sample_seeds(int(cfg.seed), indices[p0:p1], stream=STREAM_SAMPLER)
        knob = torch.tensor(values, dtype=torch.float64).repeat_interleave(m)
        y_c = y[p0:p1]
        y_all = y_c.repeat(len(values), *([1] * (y.dim() - 1))).to(device)
        result = sampler(model, y_all, operator, sigma, knob, seeds * len(values), schedule)
        recon = result.samples.detach().cpu().reshape(len(values), m, *x0.shape[1:])
        if not torch.isfinite(recon).all():
            raise JobFault(f"the sampler returned non-finite values for test points {start}..{stop - 1}")
        if store is not None and size < n:
            store.save(start, stop, recon, result.nfe)
            log.info("vsdr: sampled chunk %d..%d of %d", start, stop - 1, n)
        chunks.append(recon)
        nfe = max(nfe, result.nfe)
    if reused:
        log.info("vsdr: reused %d finished chunks from %s", reused, store.dir)
    return torch.cat(chunks, dim=1), nfe, time.perf_counter() - t0


def base_row(cfg: DictConfig) -> dict:
    """The columns every metrics row of this job shares."""
    return {"dataset": cfg.dataset.name, "operator": cfg.operator.name,
            "sigma": float(cfg.noise.sigma), "sigma_space": cfg.noise.space,
            "sampler": cfg.sampler.name, "knob": cfg.sampler.knob, "seed": int(cfg.seed)}


def evaluate(cfg: DictConfig, x0, recon, values, nfe: int) -> list[dict]:
    """One metrics row per knob value (columns of ``COLUMNS``): MSE to the paired clean
    point, exact empirical W2 to the clean test points."""
    rows = []
    for value, r in zip(values, recon):
        w2, estimator = empirical_w2(r.numpy(), x0.numpy(), int(cfg.eval.w2_max_exact),
                                     seed=int(cfg.seed))
        rows.append(dict(base_row(cfg), value=value, mse=mse(x0, r), w2=w2, w2_estimator=estimator,
                         n=len(x0), nfe=nfe))
    return rows


def run_job(cfg: DictConfig, job_dir: str | Path) -> list[dict]:
    """Run one job and write its files into ``job_dir``; return the metrics rows."""
    from vsdr.experiments.image_job import is_image_config, print_image_table, run_image_job

    t_start = time.perf_counter()
    job_dir = Path(job_dir)
    validate_config(cfg)
    rhash = results_hash(cfg)
    done = finished_rows(job_dir, rhash)
    if done is not None:
        log.info("vsdr: skipping job %s: its metrics.json matches config hash %s", job_dir, rhash)
        (print_image_table if is_image_config(cfg) else print_table)(done)
        return done
    if is_image_config(cfg):  # images: their own job (vsdr/experiments/image_job.py)
        return run_image_job(cfg, job_dir)
    indices = shard_indices(cfg)
    ensure_writable(job_dir)
    device = resolve_device(cfg.device)
    torch.manual_seed(int(cfg.seed))
    values = knob_values(cfg)

    dataset = _instantiate(cfg.dataset)
    operator = _instantiate(cfg.operator)
    sampler = _instantiate(cfg.sampler, progress=bool(cfg.progress))
    schedule = VPSchedule.linear(int(cfg.diffusion.T), float(cfg.diffusion.beta_start),
                                 float(cfg.diffusion.beta_end))
    logger = build_logger(cfg, job_dir)
    ok = False
    try:
        model, model_info = build_score_model(cfg, schedule, dataset, operator, logger, device)
        model = make_batch_invariant(model, cfg.data.get("net_batch"))
        oracle = make_oracle(cfg, dataset, operator, STREAM_TEST) if is_analytic(dataset) else None
        if oracle is not None:  # one observation, n reconstructions of it
            n = int(cfg.data.n_test)
            g = torch.Generator().manual_seed(per_sample_seeds(int(cfg.seed), [1], STREAM_TEST)[0])
            x0 = oracle.post.sample(n, g).float()  # posterior draws (the reference panel)
            y = oracle.y.float().expand(n, -1).contiguous()
        else:
            x0, y = make_measurements(cfg, dataset, operator)
        x0, y = x0[torch.from_numpy(indices)], y[torch.from_numpy(indices)]
        store = ChunkStore(job_dir, rhash)
        recon, nfe, sample_seconds = sample_all(cfg, sampler, model, x0, y, operator, values,
                                                schedule, device, indices, store)
        if oracle is not None:
            rows = evaluate_analytic(cfg, oracle, recon, values, nfe, base_row(cfg))
        else:
            rows = evaluate(cfg, x0, recon, values, nfe)
        try:
            if oracle is not None:
                write_analytic_figures(cfg, job_dir, dataset, oracle, sampler, model, operator,
                                       schedule, rows)
            write_outputs(cfg, job_dir, rows, x0, y, recon, values, model_info,
                          {"sample_seconds": sample_seconds,
                           "wall_seconds": time.perf_counter() - t_start}, indices)
        except OSError as e:
            raise JobFault(f"could not write the results into {job_dir} ({e.strerror or e}): free "
                           "space there or choose another output dir") from e
        store.clear()
        log.info("vsdr: computed job %s (config hash %s)", job_dir, rhash)
        if logger is not None:
            for r in rows:
                logger.log_metrics({f"eval/{r['knob']}={r['value']:g}/mse": r["mse"],
                                    f"eval/{r['knob']}={r['value']:g}/w2": r["w2"]})
        ok = True
    finally:
        finish_logger(logger, ok)
    print_table(rows)
    return rows


def finish_logger(logger, ok: bool = True) -> None:
    """Finalize the logger; a wandb run is finished, and marked failed unless ``ok``."""
    tracking.finish(logger, ok)


def write_outputs(cfg: DictConfig, job_dir: Path, rows: list[dict], x0, y, recon, values,
                  model_info: dict, timing: dict, indices=None) -> None:
    """metrics.csv, metrics.json (``config_hash``: the results hash of ``resume``; written
    last, it marks the job finished), samples.npz, items.csv, reconstructions.png,
    dp_curve.{csv,png}."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    columns = COLUMNS + [c for c in ANALYTIC_COLUMNS if c in rows[0]]
    indices = np.arange(len(x0)) if indices is None else np.asarray(indices)
    write_npz(job_dir / "samples.npz", x0=x0.numpy(), y=y.numpy(), samples=recon.numpy(),
              values=np.asarray(values), knob=np.asarray(cfg.sampler.knob), index=indices)
    if "mmse" not in rows[0]:  # per-item results (shards, resume); analytic jobs have one y
        write_csv(job_dir / "items.csv", item_rows(indices, values, cfg.sampler.knob, x0.numpy(),
                                                   y.numpy(), recon.numpy()))
    write_csv(job_dir / "metrics.csv", rows, columns)
    meta = {
        "rows": rows, "config": resolved, "config_hash": results_hash(cfg),
        "seed": int(cfg.seed), "nfe": rows[0]["nfe"], "model": model_info, **timing,
        "versions": {"vsdr": vsdr.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    }
    title = (f"{cfg.dataset.name}, {cfg.operator.name}, σ={float(cfg.noise.sigma):g} "
             f"({cfg.noise.space} units), {cfg.sampler.name}")
    import matplotlib.pyplot as plt

    if x0.dim() == 2 and x0.shape[1] == 2:
        y_plot = y.numpy() if y.shape[-1] == 2 else None
        fig = plot_reconstructions(x0.numpy(), y_plot, [r.numpy() for r in recon], values,
                                   cfg.sampler.knob, title=title)
        save_figure(fig, job_dir / "reconstructions.png")
        plt.close(fig)
    write_csv(job_dir / "dp_curve.csv", rows, columns)
    fig = plot_dp_curve(rows, title=title)
    save_figure(fig, job_dir / "dp_curve.png")
    plt.close(fig)
    write_json(job_dir / "metrics.json", meta)


def print_table(rows: list[dict]) -> None:
    """λ, MSE, W2 table on stdout, with MSE(λ=1)/MSE(λ=0) when both are there."""
    knob = rows[0]["knob"]
    print(f"\n{knob:>8} {'MSE':>10} {'W2':>10}")
    for r in rows:
        print(f"{r['value']:>8.3g} {r['mse']:>10.4f} {r['w2']:>10.4f}")
    by_value = {float(r["value"]): r["mse"] for r in rows}
    if knob == "lam" and 0.0 in by_value and 1.0 in by_value and by_value[0.0] > 0:
        print(f"MSE(λ=1)/MSE(λ=0) = {by_value[1.0] / by_value[0.0]:.3f}")
