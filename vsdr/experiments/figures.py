"""The paper figures ``make figures`` regenerates into outputs/figures/ (scripts/make_figures.py).

An entry of FIGURES is either one `run.py experiment=NAME` job (its dir is the figure), or a
`Figure`: several jobs (each a list of overrides, run once per invocation and shared between
figures, into outputs/figures/jobs/KEY/) gathered by a plot function into
outputs/figures/NAME/ (PNG and PDF, plus the gathered CSV). ``plan_jobs`` lists the jobs of
some figures, ``make_figures`` runs them (vsdr.experiments.scheduler) and plots."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsdr.experiments.scheduler import Job, copy_results, job_plan, run_jobs, split_duplicates, start_order

SIGMA = 0.75       # the default noise level (conf/noise/gaussian.yaml)
SIGMA2 = 0.5       # the second level: no retraining of the score network
#: the 2D sweeps call the network on 2048-row blocks instead of model=mlp2d's 256: their
#: 6,000–11,000 rows per step run ~1.6× faster (docs/RESULTS.md §9), and on one thread the
#: MLP's rows come out bit-identical for either block (the figures do not change)
BLOCKS_2D = "data.net_batch=2048"


def jobs_for(dataset: str, sigma: float = SIGMA) -> dict[str, list[str]]:
    """The jobs of one DP plane: ours, PSCGAN-N, PSCGAN-σz, DPS, DiffPIR, interpolation (ours and
    the interpolation run the ζ(λ) tuned for the data set and σ, conf/tuned/)."""
    base = [f"dataset={dataset}", f"noise.sigma={sigma}", BLOCKS_2D]
    return {f"{dataset}-{sigma}-{e}": [f"experiment={e}", *base]
            for e in ("ours_lam", "pscgan_n", "pscgan_sigmaz", "dps_zeta", "diffpir_lambda", "interp_s")}


def robustness_jobs(dataset: str = "pinwheel") -> dict[str, list[str]]:
    """At SIGMA2: ours (same network, the ζ(λ) tuned for SIGMA2), PSCGAN trained at SIGMA
    applied there, and PSCGAN retrained at SIGMA2 (the reference it would need)."""
    base = [f"dataset={dataset}", f"noise.sigma={SIGMA2}", BLOCKS_2D]
    return {
        f"{dataset}-{SIGMA2}-ours_lam": ["experiment=ours_lam", *base],
        f"{dataset}-{SIGMA2}-pscgan_n-trained{SIGMA}": ["experiment=pscgan_n", *base,
                                                        f"sampler.gan.train_sigma={SIGMA}"],
        f"{dataset}-{SIGMA2}-pscgan_sigmaz-trained{SIGMA}": ["experiment=pscgan_sigmaz", *base,
                                                             f"sampler.gan.train_sigma={SIGMA}"],
        f"{dataset}-{SIGMA2}-pscgan_n": ["experiment=pscgan_n", *base],
        f"{dataset}-{SIGMA2}-pscgan_sigmaz": ["experiment=pscgan_sigmaz", *base],
    }


@dataclass
class Figure:
    """A figure made from several jobs: what it shows, its jobs (key -> overrides), its plot."""

    doc: str
    jobs: dict[str, list[str]]
    plot: Callable[[str, dict[str, Path], Path], None]


# ------------------------------------------------------------------------- plot functions

def _save(fig, out: Path, stem: str) -> None:
    import matplotlib.pyplot as plt

    from vsdr.experiments.writer import save_figure

    save_figure(fig, out / f"{stem}.png")  # and its PDF
    plt.close(fig)


def _rows(job_dirs: dict[str, Path]) -> list[dict]:
    from vsdr.experiments.gather import read_rows

    rows = read_rows([d / "metrics.csv" for d in job_dirs.values()])
    for r in rows:
        r["job"] = next(k for k, d in job_dirs.items() if d.name == r["job"])
    return rows


def _label(r: dict) -> str:
    """Legend name: the sampler's declared label and its knob; PSCGAN says at which σ it was
    trained when that is not the data's σ."""
    from vsdr.samplers import knob_symbol, sampler_label

    name = sampler_label(r["sampler"])
    if r["sampler"] == "pscgan":
        name = f"{name}-{knob_symbol(r['knob'])}"
        return f"{name} (trained at σ={SIGMA:g})" if "trained" in r["job"] else name
    return name


def mse_limit(rows: list[dict], ours_factor: float) -> float | None:
    """The MSE axis's top: ``ours_factor`` × ours' largest MSE, raised so that every sampler
    keeps at least its best point on the plot (with 15 % room above it)."""
    ours = [float(r["mse"]) for r in rows if r["sampler"] == "ours"]
    if not ours:
        return None
    best = {}
    for r in rows:
        best[r["sampler"]] = min(best.get(r["sampler"], float("inf")), float(r["mse"]))
    return max(ours_factor * max(ours), 1.15 * max(best.values()))


def plot_dp(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    from vsdr.experiments.writer import write_csv
    from vsdr.plotting.figures import plot_dp_overlay

    rows = _rows(job_dirs)
    write_csv(out / "dp_points.csv", rows)
    sigmas = ", ".join(sorted({f"{float(r['sigma']):g}" for r in rows}))
    title = f"{name}: {rows[0]['dataset']}, denoising, σ={sigmas} (data units)"
    _save(plot_dp_overlay(rows, title, label_of=_label, max_mse=mse_limit(rows, 1.3)), out, name)


def plot_points(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    """Clean, noisy, ours at λ ∈ {0, 0.3, 0.8, 1}, one PSCGAN sample (σ_z = 1)."""
    from vsdr.plotting.points import plot_point_panels

    ours = np.load(next(d for k, d in job_dirs.items() if k.endswith("ours_lam")) / "samples.npz")
    gan = np.load(next(d for k, d in job_dirs.items() if k.endswith("pscgan_sigmaz")) / "samples.npz")
    panels = [("clean x0", ours["x0"]), ("noisy y", ours["y"])]
    for lam in (0.0, 0.3, 0.8, 1.0):
        k = int(np.argmin(np.abs(ours["values"] - lam)))
        panels.append((f"ours λ={ours['values'][k]:g}", ours["samples"][k]))
    k = int(np.argmin(np.abs(gan["values"] - 1.0)))
    panels.append((f"PSCGAN σz={gan['values'][k]:g}", gan["samples"][k]))
    _save(plot_point_panels(panels, f"{name}: denoising at σ={SIGMA:g} (data units)"), out, name)


def plot_points_and_dp(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    plot_points(f"{name}_points", job_dirs, out)
    plot_dp(f"{name}_dp", job_dirs, out)


def image_jobs(operator: str = "gaussian_blur_small") -> dict[str, list[str]]:
    """images_small (digits 16²) on one operator: ours over λ, DPS over ζ, DiffPIR over λ_D,
    PSCGAN-N over N (its GAN trained for this operator and σ, cached)."""
    extra = [f"operator={operator}"] if operator != "gaussian_blur_small" else []
    return {f"digits-{operator}-{e}": [f"experiment={e}", *extra]
            for e in ("images_small", "images_small_dps", "images_small_diffpir", "images_small_pscgan")}


def _image_axes(name: str, rows: list[dict], job_dirs: dict[str, Path]) -> tuple[str, str, str | None]:
    """Title, perception column and its axis label of a digits DP plane (from the first job's
    metrics.json: the jobs share data, operator, σ_y and image_eval)."""
    import json

    meta = json.loads((next(iter(job_dirs.values())) / "metrics.json").read_text())
    perception = meta["perception"]
    r0 = rows[0]
    title = (f"{name}: {r0['dataset']} 16², {r0['operator']}, σ_y={float(r0['sigma']):g} "
             f"({r0['sigma_space']} units)")
    patch = meta["config"]["image_eval"].get("fd_patch")
    grey = " grey" if meta["config"]["image_eval"].get("fd_patch_grey") else ""
    xlabel = {"fd_pca": "perception: fd_pca, Fréchet distance in the top-8 PCA space of the "
                        "training digits (lower is more natural)",
              "fd_patch": f"perception: fd_patch, Fréchet distance of{grey} {patch}×{patch} patches to the "
                          "clean images (lower is more natural)"}.get(perception)
    return title, perception, xlabel


def plot_images(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    """Fig. 7 at CPU scale: the DP plane (MSE of [0, 1] images against the perception measure
    the jobs chose, image_eval.perception) and one image grid: clean, measurement, ours for every λ,
    and DPS, DiffPIR and PSCGAN each at its lowest-MSE knob value."""
    import torch

    from vsdr.experiments.writer import write_csv
    from vsdr.plotting.figures import plot_dp_overlay
    from vsdr.plotting.images import plot_image_columns
    from vsdr.samplers import knob_symbol, sampler_label

    rows = _rows(job_dirs)
    write_csv(out / "dp_points.csv", rows)
    title, perception, xlabel = _image_axes(name, rows, job_dirs)
    _save(plot_dp_overlay(rows, title, label_of=_label, max_mse=mse_limit(rows, 2.0),
                          perception=perception, xlabel=xlabel), out, f"{name}_dp")
    columns, x0, y = [], None, None
    for key, d in job_dirs.items():
        z = np.load(d / "samples.npz")
        x0, y = (z["x0"], z["y"]) if x0 is None else (x0, y)
        knob = str(z["knob"])
        sym = knob_symbol(knob)
        job_rows = [r for r in rows if r["job"] == key]
        sampler = job_rows[0]["sampler"]
        if sampler == "ours":
            picks = range(len(z["values"]))
        else:
            best = min(job_rows, key=lambda r: float(r["mse"]))
            picks = [int(np.argmin(np.abs(z["values"] - float(best["value"]))))]
        prefix = "" if sampler == "ours" else f"{sampler_label(sampler).split(' (')[0]} "
        columns += [(f"{prefix}{sym}={float(z['values'][k]):g}", torch.from_numpy(z["samples"][k]))
                    for k in picks]
    fig = plot_image_columns(torch.from_numpy(x0), torch.from_numpy(y), columns, rows=6,
                             title=f"{title}; baselines at their lowest-MSE setting")
    _save(fig, out, f"{name}_grid")


#: the few-step settings of the proxy figures: (sampler, K or None for all T, step rule); ``iso`` is
#: ours with ``guidance=pigdm_iso``
PROXY_RUNS = (("ours", None, None), ("ours", 100, "trace"), ("ours", 50, "trace"), ("ours", 25, "trace"),
              ("ours", 25, "eq12"), ("dps", None, None), ("dps", 100, None), ("dps", 25, None))
PROXY_ISO_RUNS = (("iso", None, None), ("iso", 100, "trace"), ("iso", 50, "trace"), ("iso", 25, "trace"),
                  ("ours", None, None), ("ours", 100, "trace"))
#: ``pigdm`` is ours with ``guidance=pigdm`` (the network's Jacobian; ``eq12``: no trace estimate)
PROXY_PIGDM_RUNS = (("pigdm", None, None), ("pigdm", 100, None), ("pigdm", 50, None), ("pigdm", 25, None),
                    ("ours", None, None), ("ours", 100, "trace"))
#: the curve label of each sampler of the proxy figures, and the overrides that run it
PROXY_WHO = {"ours": "ours, dps form (λ)", "iso": "ours, pigdm_iso (λ)", "pigdm": "ours, pigdm (λ)",
             "dps": "DPS (ζ)"}
PROXY_CONFIG = {"ours": ["experiment=images_proxy"], "iso": ["experiment=images_proxy", "guidance=pigdm_iso"],
                "pigdm": ["experiment=images_proxy", "guidance=pigdm"],
                "dps": ["experiment=images_proxy_dps"]}


def proxy_jobs(operator: str = "gaussian_blur_small", runs: tuple = PROXY_RUNS) -> dict[str, list[str]]:
    """The FFHQ proxy (digits network trained with T = 1000, experiment=images_proxy) on one
    operator: by default ours on all 1000 steps and on K = 100, 50, 25 (``step_rule=trace``;
    ``eq12`` at 25), DPS on 1000, 100 and 25 steps (docs/RESULTS.md §21)."""
    extra = [f"operator={operator}"] if operator != "gaussian_blur_small" else []
    jobs = {}
    for sampler, K, rule in runs:
        steps = [] if K is None else [f"sampler.steps={K}"]
        rules = [f"sampler.step_rule={rule}"] if rule else []
        size = "T1000" if K is None else f"K{K}"
        key = f"proxy-{operator}-{sampler}-{size}" + (f"-{rule}" if rule else "")
        jobs[key] = [*PROXY_CONFIG[sampler], *extra, *steps, *rules]
    return jobs


def plot_few_steps(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    """The proxy's DP plane, one curve per (sampler, steps, rule): ours over λ, DPS over ζ."""
    from vsdr.experiments.writer import write_csv
    from vsdr.plotting.figures import plot_dp_overlay

    rows = _rows(job_dirs)
    write_csv(out / "dp_points.csv", rows)
    title, perception, xlabel = _image_axes(name, rows, job_dirs)

    def label(r: dict) -> str:
        sampler, steps, *rule = r["job"].split("-")[2:]
        who = PROXY_WHO[sampler]
        count = "all 1000" if steps == "T1000" else steps[1:]
        return f"{who}, {count} steps" + (f", {rule[0]}" if rule else "")

    # zoomed on the 1000-step curve: settings that break (MSE over twice its largest, or the
    # perception measure over three times its largest) fall off the plot, the title says how many
    ref = [r for r in rows if r["job"].endswith("-T1000") and "-dps-" not in r["job"]]
    top = 2.0 * max(float(r["mse"]) for r in ref) if ref else mse_limit(rows, 2.0)
    right = 3.0 * max(float(r[perception]) for r in ref) if ref else None
    _save(plot_dp_overlay(rows, f"{title}; network trained with T = 1000", label_of=label,
                          max_mse=top, perception=perception, xlabel=xlabel, max_perception=right),
          out, f"{name}_dp")


def _only(jobs: dict[str, list[str]], *suffixes: str) -> dict[str, list[str]]:
    return {k: v for k, v in jobs.items() if k.endswith(suffixes)}


#: experiment config (str) or Figure -> what it reproduces
FIGURES: dict[str, str | Figure] = {
    "mixture_dp": "Figs. 1-3: mixture prior/posterior, trajectories per λ, W2 and KL against MSE",
    "gaussian_theory": "Theorems 1-2 on a 16-D Gaussian: MSE/D* and W2 against λ, optimal DP curve",
    "pinwheel_dp": "Figs. 4-5 (ours): pinwheel reconstructions per λ and the DP curve",
    "fig4": Figure("Fig. 4: pinwheel clean, noisy, ours λ ∈ {0, 0.3, 0.8, 1}, PSCGAN",
                   _only(jobs_for("pinwheel"), "ours_lam", "pscgan_sigmaz"), plot_points),
    "fig5": Figure("Fig. 5: pinwheel DP plane: ours, PSCGAN-N, PSCGAN-σz, DPS, DiffPIR, interp.",
                   jobs_for("pinwheel"), plot_dp),
    "fig9": Figure("Fig. 9: S-curve points and DP plane", jobs_for("scurve"), plot_points_and_dp),
    "fig10": Figure("Fig. 10: moons points and DP plane", jobs_for("moons"), plot_points_and_dp),
    "fig11": Figure("Fig. 11: DPS with ζ swept at λ = 1 against ours with λ swept (pinwheel)",
                    _only(jobs_for("pinwheel"), "ours_lam", "dps_zeta"), plot_dp),
    "robustness": Figure(f"Second noise level σ={SIGMA2:g}: the same score network vs PSCGAN "
                         f"trained at σ={SIGMA:g} (and retrained at σ={SIGMA2:g})",
                         robustness_jobs("pinwheel"), plot_dp),
    "images_small": Figure("Fig. 7 at CPU scale: digits 16², Gaussian deblur: ours over λ, DPS, "
                           "DiffPIR, PSCGAN-N (DP plane, image grid)", image_jobs("gaussian_blur_small"),
                           plot_images),
    "images_small_sr": Figure("Fig. 7 at CPU scale: digits 16², ×4 super-resolution: ours over λ, "
                              "DPS, DiffPIR, PSCGAN-N", image_jobs("super_resolution_x4"), plot_images),
    "images_small_severe": "Fig. 7 at CPU scale at the FFHQ comparison's higher noise, σ_y = 0.5 in "
                           "[−1, 1]: digits deblur, ours over λ with the calibrated ζ(λ) (a soft λ = 0, "
                           "sharp strokes from λ = 0.5; σ_y = 0.2: experiment=images_small_severe)",
    "images_proxy": Figure("Few steps on the FFHQ proxy (digits network trained with T = 1000), "
                           "Gaussian deblur: ours on 1000 and on 100/50/25 steps, DPS on 1000/100/25 "
                           "(DP plane; on request)", proxy_jobs("gaussian_blur_small"), plot_few_steps),
    "images_proxy_sr": Figure("Few steps on the FFHQ proxy, ×4 super-resolution (on request)",
                              proxy_jobs("super_resolution_x4"), plot_few_steps),
    "images_proxy_iso": Figure("Few steps on the FFHQ proxy, Gaussian deblur, with guidance=pigdm_iso "
                               "(no network gradient): 1000 and 100/50/25 steps against the dps form "
                               "(on request)", proxy_jobs("gaussian_blur_small", PROXY_ISO_RUNS),
                               plot_few_steps),
    "images_proxy_pigdm_sr": Figure("Few steps on the FFHQ proxy, ×4 super-resolution, with "
                                    "guidance=pigdm (ΠGDM with the network's Jacobian): 1000 and "
                                    "100/50/25 steps against the dps form (on request)",
                                    proxy_jobs("super_resolution_x4", PROXY_PIGDM_RUNS), plot_few_steps),
}

#: figures made only when named (`make figures images_proxy`): over the 15-minute budget of
#: the default set (the proxy's network trains for 5 min and its 1000-step curves take 6–10 each)
ON_REQUEST = ("images_proxy", "images_proxy_sr", "images_proxy_iso", "images_proxy_pigdm_sr")


#: overrides of the single-job entries (pinwheel_dp is then fig5's ours_lam job: run once)
EXTRA = {"pinwheel_dp": [BLOCKS_2D],
         # σ_y = 0.5 shows the λ = 0 / λ = 1 difference in the grid; 0.2's is slight (RESULTS.md §18)
         "images_small_severe": ["noise.sigma=0.5"]}



def figure_jobs(name: str) -> dict[str, list[str]]:
    """The jobs of figure ``name``, key -> overrides (a single-job entry's key is its name)."""
    spec = FIGURES[name]
    return {name: [f"experiment={name}", *EXTRA.get(name, [])]} if isinstance(spec, str) else spec.jobs


def job_dir(out_root: Path, name: str, key: str) -> Path:
    """Where job ``key`` of figure ``name`` writes: the figure's own folder for a single-job
    entry, ``out_root/jobs/KEY`` for a job of a ``Figure``."""
    return out_root / name if isinstance(FIGURES[name], str) else out_root / "jobs" / key


def plan_jobs(names: list[str], out_root: Path, reuse: bool = False) -> dict[str, Job]:
    """The jobs of ``names`` by key (a job shared by several figures once), each with the
    networks it trains and its results hash; with ``reuse``, jobs whose ``metrics.json`` is
    already there are left out."""
    jobs: dict[str, Job] = {}
    for name in names:
        for key, overrides in figure_jobs(name).items():
            out = job_dir(out_root, name, key)
            if key in jobs:
                continue
            if reuse and (out / "metrics.json").is_file():
                print(f"   job {key}: reused", flush=True)
                continue
            jobs[key] = Job(key, overrides, out, *job_plan(overrides))
    return jobs


def make_figures(names: list[str], out_root: Path, reuse: bool = False, workers: int = 1) -> int:
    """Run the jobs of ``names`` (``workers`` at a time) and plot each figure whose jobs all
    succeeded; 1 when a figure failed, else 0."""
    t_all = time.perf_counter()
    jobs = plan_jobs(names, out_root, reuse)
    order, copies = split_duplicates(start_order(list(jobs.values())))
    print(f"== {len(order)} jobs for {names}, {workers} at a time"
          + (f" ({len(copies)} more share a results config and are copied)" if copies else ""), flush=True)
    ok_job = run_jobs(order, max(1, workers))
    for key, src in copies.items():
        ok_job[key] = ok_job.get(src.key, False)
        if ok_job[key]:
            copy_results(src, jobs[key])
            print(f"   job {key}: copied from {src.key} (same results config)", flush=True)
    failed = []
    for name in names:
        spec = FIGURES[name]
        keys = list(figure_jobs(name))
        ok = all(ok_job.get(k, True) for k in keys)
        if ok and not isinstance(spec, str):
            (out_root / name).mkdir(parents=True, exist_ok=True)
            spec.plot(name, {k: out_root / "jobs" / k for k in keys}, out_root / name)
        print(f"== {name}: {'ok' if ok else 'FAILED'} -> {out_root / name}  "
              f"({spec if isinstance(spec, str) else spec.doc})", flush=True)
        if not ok:
            failed.append(name)
    print(f"== all: {len(failed)} failed, {time.perf_counter() - t_all:.0f} s", flush=True)
    return 1 if failed else 0
