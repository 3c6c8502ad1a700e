"""What a GPU machine runs first (docs/FFHQ.md): the FFHQ network's speed, memory and reduced-
precision error, and one small FFHQ deblur job end to end (vsdr.experiments.gpu_check measures).

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
import os
import sys
import time
from pathlib import Path

import torch

from vsdr.experiments.gpu_check import device_hours, markdown, precision_error, run_small_job, step_costs
from vsdr.experiments.prior import random_network

ROOT = Path(__file__).resolve().parents[1]


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
