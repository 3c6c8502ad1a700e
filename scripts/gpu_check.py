"""What a GPU machine runs first (docs/FFHQ.md): the FFHQ network's speed, memory and reduced-
precision error, and one small FFHQ deblur job end to end.

    python scripts/gpu_check.py                 # device auto; on one H200 well under 5 minutes
    python scripts/gpu_check.py --cpu-scale     # the same checks at CPU size (~1-2 minutes)
    python scripts/gpu_check.py --image-size 256 --batches 1 --precisions fp32 --skip-job  # CPU, 256²

Sections:

- ``error``: ``model=adm_ffhq`` with random weights (its zero-initialised output layers re-
  initialised, ``vsdr.models.random_init``), outputs and the gradient through x̂0 under each
  reduced precision against float32 (relative L2 error of ε, of v, of the gradient; max |Δε|);
- ``steps``: seconds per sampler step (one forward + backward through x̂0 = what ours and DPS
  pay per step) and per forward alone (DiffPIR), at each batch and precision; peak memory
  (``torch.cuda.max_memory_allocated`` on a GPU, the process's peak RSS on CPU);
- ``job``: a 10-step (``sampler.steps=10``), 2-image ``experiment=ffhq_deblur`` through
  ``python run.py`` with a random-weight checkpoint saved as a plain guided-diffusion state dict
  (adm_ffhq at 256², all 11 λ; ``--cpu-scale``: adm_small at 64², λ ∈ {0, 1}), stand-in metrics;
- ``hours``: device-hours per FFHQ job of the paper (1,000 images) for each measured batch
  ``B`` taken as ``data.net_batch``: ``images × ⌈rows/B⌉ × steps × seconds per call / 3600``
  (``device_hours``; docs/FFHQ.md writes the formula out).

Writes ``OUT/gpu_check.json`` (default ``outputs/gpu_check``) and prints markdown tables.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from vsdr.diffusion.tweedie import x0_from_eps
from vsdr.experiments.prior import random_network
from vsdr.models.precision import DTYPES, NetworkPrecision

ROOT = Path(__file__).resolve().parents[1]

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-scale", action="store_true",
                    help="64² images, batches 1 and 2, the job on adm_small (a CPU run of ~1-2 minutes)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--image-size", type=int, default=None, help="default 256 (64 with --cpu-scale)")
    ap.add_argument("--batches", default=None,
                    help="comma-separated (default 1,4,8,16; 1,2 with --cpu-scale); 4: adm_ffhq's net_batch")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated of fp32, bf16, fp16")
    ap.add_argument("--reps", type=int, default=None, help="timed rounds (default 3; 1 with --cpu-scale)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--skip-job", action="store_true")
    ap.add_argument("--job-precision", default="fp32")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "gpu_check"))
    a = ap.parse_args(argv)
    from vsdr.experiments.build import resolve_device

    device = resolve_device(a.device)
    size = a.image_size or (64 if a.cpu_scale else 256)
    batches = [int(b) for b in (a.batches or ("1,2" if a.cpu_scale else "1,4,8,16")).split(",")]
    precisions = a.precisions.split(",")
    reps = a.reps or (1 if a.cpu_scale else 3)
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    else:
        torch.backends.cudnn.benchmark = True
    t_start = time.perf_counter()
    report: dict = {"device": str(device), "device_name": torch.cuda.get_device_name(device)
                    if device.type == "cuda" else "cpu", "threads": torch.get_num_threads(),
                    "image_size": size, "model": "adm_ffhq (random weights)", "torch": torch.__version__,
                    "channels_last": a.channels_last}
    print(f"gpu_check on {report['device_name']}, adm_ffhq at {size}², batches {batches}", flush=True)
    net = random_network("adm_ffhq", size).to(device).eval().requires_grad_(False)
    report["error"] = precision_error(net, device, size, precisions)
    print(markdown(report["error"], ["precision", "rel_eps", "rel_v", "rel_grad", "max_abs_eps", "eps_rms"]))
    report["steps"] = step_costs(net, device, size, batches, precisions, reps, a.channels_last)
    print(markdown(report["steps"], ["precision", "batch", "step_s", "forward_s", "step_s_per_row",
                                     "forward_s_per_row", "peak_mib"]))
    del net
    if not a.skip_job:
        report["job"] = run_small_job(out, str(device.type), a.cpu_scale, a.job_precision)
        job = report["job"]
        print(f"job: exit {job['returncode']}, {job['wall_s']:.1f} s wall"
              + (f", {job['seconds_per_step']:.3f} s per sampler step" if "seconds_per_step" in job else ""))
        if job["returncode"] != 0:
            print(job.get("stderr_tail", ""), file=sys.stderr)
    for p in precisions:
        report.setdefault("hours", {})[p] = device_hours(report["steps"], p)
        if size != 256:
            note = f" (measured at {size}², not 256²: not the FFHQ cost)"
        else:
            note = ""
        print(f"\ndevice-hours per 1,000-image FFHQ job, {p}{note}:")
        hours = report["hours"][p]
        print(markdown(hours, [k for k in hours[0] if k != "images"] if hours else []))
    report["wall_s"] = time.perf_counter() - t_start
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out / 'gpu_check.json'} ({report['wall_s']:.0f} s)")
    return 0 if report.get("job", {}).get("returncode", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
