"""The measurements of scripts/gpu_check.py (docs/FFHQ.md), which says what each section does:
reduced-precision error of a network against float32, seconds and peak memory per sampler step,
a small FFHQ job through ``run.py``, and device-hours per FFHQ job of the paper."""
from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from vsdr.diffusion.tweedie import x0_from_eps
from vsdr.experiments.prior import random_network
from vsdr.models.precision import DTYPES, NetworkPrecision

#: the repository root (vsdr is installed editable from it): conf/ and run.py
ROOT = Path(__file__).resolve().parents[2]

#: the FFHQ jobs of Figs. 6-8 and Table IV, for the device-hours table
FFHQ_JOBS = ("ffhq_deblur", "ffhq_deblur_hinoise", "ffhq_sr8", "ffhq_deblur_dps", "ffhq_sr8_dps",
             "ffhq_deblur_diffpir", "ffhq_sr8_diffpir")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def guided_step(net, x: torch.Tensor, t: torch.Tensor, alpha_bar: float = 0.5) -> torch.Tensor:
    """One sampler step's network work: ε (and v) at ``x``, Tweedie's x̂0 (docs/METHOD.md §1)
    and the gradient of ‖x̂0‖² with respect to ``x`` through the network."""
    x = x.detach().requires_grad_(True)
    out = net(x, t)
    x0 = x0_from_eps(x, out[:, : x.shape[1]], alpha_bar)
    return torch.autograd.grad((x0 ** 2).sum(), x)[0]


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def precision_error(net, device, size: int, precisions: list[str], batch: int = 2) -> list[dict]:
    """Each reduced precision against float32 on the same inputs (t = 50 and 500)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    t = torch.tensor([50, 500] * (batch // 2) + [500] * (batch % 2), device=device)
    ref_out, ref_grad = NetworkPrecision(net)(x, t).detach(), guided_step(NetworkPrecision(net), x, t)
    rows = []
    for p in precisions:
        if DTYPES[p] is None:
            continue
        wrapped = NetworkPrecision(net, DTYPES[p])
        out, grad = wrapped(x, t).detach(), guided_step(wrapped, x, t)

        def rel(a, b):
            return float((a.double() - b.double()).norm() / b.double().norm())

        rows.append({"precision": p, "rel_eps": rel(out[:, :3], ref_out[:, :3]),
                     "rel_v": rel(out[:, 3:], ref_out[:, 3:]), "rel_grad": rel(grad, ref_grad),
                     "max_abs_eps": float((out[:, :3] - ref_out[:, :3]).abs().max()),
                     "eps_rms": float(ref_out[:, :3].pow(2).mean().sqrt())})
    return rows


def step_costs(net, device, size: int, batches: list[int], precisions: list[str], reps: int,
               channels_last: bool) -> list[dict]:
    """Median seconds of one forward + backward through x̂0 and of one forward, per batch and
    precision (one warm-up call each first)."""
    rows = []
    for p in precisions:
        wrapped = NetworkPrecision(net, DTYPES[p], channels_last)
        for b in batches:
            x = torch.randn(b, 3, size, size, device=device)
            t = torch.full((b,), 500, device=device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times = {"step": [], "forward": []}
            for r in range(reps + 1):
                sync(device)
                t0 = time.perf_counter()
                guided_step(wrapped, x, t)
                sync(device)
                t1 = time.perf_counter()
                with torch.no_grad():
                    wrapped(x, t)
                sync(device)
                t2 = time.perf_counter()
                if r:  # the first round warms up (cuDNN autotuning, allocator)
                    times["step"].append(t1 - t0)
                    times["forward"].append(t2 - t1)
            med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
            rows.append({"precision": p, "batch": b, "step_s": med["step"], "forward_s": med["forward"],
                         "step_s_per_row": med["step"] / b, "forward_s_per_row": med["forward"] / b,
                         "peak_mib": peak_memory_mib(device)})
            print(f"  {p} batch {b}: {med['step']:.3f} s/step, {med['forward']:.3f} s/forward", flush=True)
    return rows


def run_small_job(out: Path, device_name: str, cpu_scale: bool, precision: str) -> dict:
    """``experiment=ffhq_deblur`` for 10 steps on 2 images through ``python run.py``, with a
    random-weight checkpoint saved as a plain state dict (guided-diffusion key names)."""
    from vsdr.data.images import save_images

    model, size = ("adm_small", 64) if cpu_scale else ("adm_ffhq", 256)
    ckpt, images = out / f"{model}-random.pt", out / "images"
    torch.save(random_network(model).state_dict(), ckpt)
    g = torch.Generator().manual_seed(0)
    save_images(torch.rand(2, 3, size, size, generator=g) * 2 - 1, images)
    args = ["experiment=ffhq_deblur", f"model={model}", f"model.ckpt={ckpt}", f"dataset.root={images}",
            f"dataset.image_size={size}", "sampler.steps=10", f"device={device_name}",
            f"precision={precision}", "image_metrics.standin=true", "logger=none", "progress=false",
            f"hydra.run.dir={out / 'job'}", f"paths.cache_dir={out / 'cache'}"]
    if cpu_scale:
        args.append("lam=[0,1]")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=out,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    info = {"args": args, "returncode": res.returncode, "wall_s": wall}
    if res.returncode != 0:
        info["stderr_tail"] = res.stderr[-2000:]
        return info
    meta = json.loads((out / "job" / "metrics.json").read_text())
    info.update(nfe=meta["nfe"], sample_seconds=meta["sample_seconds"],
                seconds_per_step=meta["seconds_per_step"],
                rows=[{k: r[k] for k in ("value", "mse", "psnr") if k in r} for r in meta["rows"]])
    return info


def device_hours(step_rows: list[dict], precision: str, images: int = 1000) -> list[dict]:
    """Device-hours of each FFHQ job (``images`` test images) for every batch ``B`` measured in
    ``precision``, the job calling the network on ``B`` rows at a time (``data.net_batch=B``):

        hours = images · ⌈rows / B⌉ · steps · seconds per call at B / 3600,

    rows = knob values × samples per image (all of one image's rows side by side), a call being
    one forward + backward through x̂0 for ours and DPS and one forward for DiffPIR. Sampler
    arithmetic outside the network (operators, noise) is left out: small next to the network."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from vsdr.experiments.build import knob_values

    mine = sorted((r for r in step_rows if r["precision"] == precision), key=lambda r: r["batch"])
    out = []
    for job in FFHQ_JOBS if mine else ():
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"experiment={job}"])
        diffpir = job.endswith("diffpir")
        rows = len(knob_values(cfg)) * int(cfg.data.get("samples_per_image", 1) or 1)
        steps = int(cfg.sampler.get("steps") or cfg.diffusion.T)
        row = {"job": job, "images": images, "rows": rows, "steps": steps,
               "cost": "forward" if diffpir else "forward+backward"}
        for r in mine:
            call = r["forward_s"] if diffpir else r["step_s"]
            row[f"hours_b{r['batch']}"] = images * math.ceil(rows / r["batch"]) * steps * call / 3600
        out.append(row)
    return out


def markdown(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
