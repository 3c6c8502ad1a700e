"""``make figures`` (vsdr.experiments.figures, vsdr.experiments.scheduler) runs its jobs several
at a time, each network trained once: ``network_files`` names the networks a job trains, and
the scheduler never runs two jobs that would train the same one side by side."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import FAST, ROOT, compose_cfg

from vsdr.experiments import figures as mf
from vsdr.experiments import scheduler as sch
from vsdr.experiments.build import network_files
from vsdr.experiments.prior import cache_path
from vsdr.experiments.pscgan import gan_cache_path


def test_network_files_follow_the_job_kind():
    ours = compose_cfg(FAST)
    assert network_files(ours) == [cache_path(ours)]
    gan = compose_cfg(["experiment=pscgan_n", *FAST])
    assert network_files(gan) == [gan_cache_path(gan)] and gan_cache_path(gan) != cache_path(ours)
    assert network_files(compose_cfg([*FAST, "model.ckpt=/some/net.pt"])) == []
    assert network_files(compose_cfg(["experiment=gaussian_theory"])) == []  # closed-form scores
    # the figure jobs of one data set share one score network, their GANs another
    jobs = mf.jobs_for("pinwheel")
    nets = {k: sch.job_plan(v)[0] for k, v in jobs.items()}
    assert len({tuple(v) for k, v in nets.items() if "pscgan" not in k}) == 1
    assert len({tuple(v) for k, v in nets.items() if "pscgan" in k}) == 1


class FakeRun:
    """A job that takes ``seconds`` and writes the network files it was missing at its end."""

    log: list = []

    def __init__(self, job, seconds: float = 0.3):
        self.job, self.end = job, time.monotonic() + seconds
        self.missing = [p for p in job.networks if not p.is_file()]
        FakeRun.log.append(("start", job.key, time.monotonic()))

    def poll(self):
        if time.monotonic() < self.end:
            return None
        for p in self.missing:
            if p.is_file():
                FakeRun.log.append(("trained twice", str(p), 0))
            p.write_text("net")
        FakeRun.log.append(("end", self.job.key, time.monotonic()))
        self.returncode = 0
        return 0


def test_jobs_run_side_by_side_but_each_network_is_trained_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sch, "start_job", FakeRun)
    FakeRun.log = []
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    jobs = [sch.Job("a1", [], tmp_path, [a]), sch.Job("a2", [], tmp_path, [a]),
            sch.Job("b1", [], tmp_path, [b]), sch.Job("free", [], tmp_path, []),
            sch.Job("a3", [], tmp_path, [a])]
    done = sch.run_jobs(jobs, workers=2)
    assert done == {k: True for k in ("a1", "a2", "b1", "free", "a3")}
    assert not [e for e in FakeRun.log if e[0] == "trained twice"]
    when = {(kind, key): t for kind, key, t in FakeRun.log}
    # a1 and b1 train different networks: they start together; a2 and a3 wait for a1's network
    assert when[("start", "b1")] < when[("end", "a1")]
    assert when[("start", "a2")] >= when[("end", "a1")] and when[("start", "a3")] >= when[("end", "a1")]
    # never more than two at once
    running, most = 0, 0
    for kind, _, _ in sorted(FakeRun.log, key=lambda e: e[2]):
        running += {"start": 1, "end": -1}[kind]
        most = max(most, running)
    assert most == 2


def test_one_worker_keeps_the_order(tmp_path, monkeypatch):
    monkeypatch.setattr(sch, "start_job", lambda job: FakeRun(job, 0.05))
    FakeRun.log = []
    jobs = [sch.Job(k, [], tmp_path, [Path(tmp_path / "n.pt")]) for k in ("x", "y", "z")]
    sch.run_jobs(jobs, workers=1)
    assert [key for kind, key, _ in FakeRun.log if kind == "start"] == ["x", "y", "z"]


def test_mse_axis_keeps_each_samplers_best_point():
    rows = [{"sampler": "ours", "mse": m} for m in (1.0, 2.0)] + \
        [{"sampler": "diffpir", "mse": m} for m in (9.0, 5.0)] + [{"sampler": "dps", "mse": 50.0}]
    assert mf.mse_limit(rows, 1.3) == 1.15 * 50.0           # DPS's only point stays on the plot
    assert mf.mse_limit(rows[:4], 1.3) == 1.15 * 5.0         # DiffPIR's best, 5.0, not 9.0
    assert mf.mse_limit(rows[:2], 1.3) == 1.3 * 2.0 and mf.mse_limit([], 1.3) is None


def test_jobs_with_one_results_config_run_once_and_are_copied(tmp_path):
    """``pinwheel_dp`` composes to the same results config as fig5's pinwheel ``ours_lam`` job
    (the same 11 λ of ours): ``make figures`` runs one and copies its folder to the other."""
    fig5 = mf.jobs_for("pinwheel")["pinwheel-0.75-ours_lam"]
    same = sch.job_plan(["experiment=pinwheel_dp", *mf.EXTRA["pinwheel_dp"]])[1]
    other = mf.jobs_for("pinwheel", 0.5)["pinwheel-0.5-ours_lam"]
    assert same == sch.job_plan(fig5)[1] != sch.job_plan(other)[1]
    a = sch.Job("a", [], tmp_path / "a", [], "h1")
    jobs = [a, sch.Job("b", [], tmp_path / "b", [], "h2"), sch.Job("c", [], tmp_path / "c", [], "h1"),
            sch.Job("d", [], tmp_path / "d", [], "")]
    run, copies = sch.split_duplicates(jobs)
    assert [j.key for j in run] == ["a", "b", "d"] and copies == {"c": a}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.csv").write_text("mse\n1.0\n")
    sch.copy_results(a, jobs[2])
    assert (tmp_path / "c" / "metrics.csv").read_text() == "mse\n1.0\n"
    assert "copied from" in (tmp_path / "c" / "make_figures.log").read_text()


def test_a_job_that_trains_nothing_runs_without_the_lightning_logger(tmp_path):
    net = tmp_path / "net.pt"
    job = sch.Job("j", ["dataset=moons"], tmp_path / "j", [net])
    assert "logger=none" not in sch.job_command(job)   # it trains the network: its log is kept
    net.write_text("net")
    cmd = sch.job_command(job)
    assert cmd[-1] == "logger=none" and "dataset=moons" in cmd and f"hydra.run.dir={job.out}" in cmd


def test_start_order_trainers_then_images_then_closed_form_then_the_rest(tmp_path):
    have, adm, gan = tmp_path / "have.pt", tmp_path / "adm.pt", tmp_path / "gan.pt"
    have.write_text("net")
    jobs = [sch.Job("2d-cached", ["experiment=ours_lam"], tmp_path, [have]),
            sch.Job("closed-form", ["experiment=gaussian_theory"], tmp_path, []),
            sch.Job("gan-trains", ["experiment=pscgan_n"], tmp_path, [gan]),
            sch.Job("gan-waits", ["experiment=pscgan_sigmaz"], tmp_path, [gan]),
            sch.Job("img-cached", ["experiment=images_small_dps"], tmp_path, [have]),
            sch.Job("adm-trains", ["experiment=images_small"], tmp_path, [adm]),
            sch.Job("adm-waits", ["experiment=images_small_diffpir"], tmp_path, [adm])]
    assert [j.key for j in sch.start_order(jobs)] == \
        ["adm-trains", "gan-trains", "img-cached", "adm-waits", "closed-form", "2d-cached", "gan-waits"]


def test_the_script_is_a_thin_command_line(tmp_path):
    """``scripts/make_figures.py --dry-run`` from another folder: the jobs in start order, the
    shared one copied, nothing run."""
    script = str(ROOT / "scripts" / "make_figures.py")
    res = subprocess.run([sys.executable, script, "--dry-run", "--out", str(tmp_path), "fig5", "pinwheel_dp"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert len(lines) == 7
    assert lines[-1] == "pinwheel_dp: copied from pinwheel-0.75-ours_lam (same results config)"
    assert f"hydra.run.dir={tmp_path / 'jobs' / 'pinwheel-0.75-dps_zeta'}" in res.stdout
    assert not list(tmp_path.iterdir())



def test_proxy_figures_are_made_on_request_and_share_one_network(tmp_path):
    """``images_proxy`` / ``images_proxy_sr`` / ``images_proxy_iso`` / ``images_proxy_pigdm_sr``:
    left out of the default set (over its 15-minute budget), eight, eight, six and six jobs on the
    T = 1000 digits network (one cache entry for all, not images_small's), with the steps, rules
    and guidance their keys name (``iso``: ``guidance=pigdm_iso``, ``pigdm``: ``guidance=pigdm``);
    the iso figure's two dps-form jobs are the deblur figure's, the pigdm figure's the SR figure's;
    ``--dry-run images_proxy`` lists its eight jobs."""
    assert set(mf.ON_REQUEST) == {"images_proxy", "images_proxy_sr", "images_proxy_iso",
                                  "images_proxy_pigdm_sr"} <= set(mf.FIGURES)
    nets = set()
    for name, operator, n in (("images_proxy", "gaussian_blur_small", 8),
                              ("images_proxy_sr", "super_resolution_x4", 8),
                              ("images_proxy_iso", "gaussian_blur_small", 6),
                              ("images_proxy_pigdm_sr", "super_resolution_x4", 6)):
        jobs = mf.figure_jobs(name)
        assert len(jobs) == n
        for key, overrides in jobs.items():
            cfg = compose_cfg(overrides)
            assert cfg.diffusion.T == 1000 and cfg.operator.name == operator
            sampler, steps = key.split("-")[2:4]
            assert cfg.sampler.get("steps") == (None if steps == "T1000" else int(steps[1:]))
            if key.endswith(("-trace", "-eq12")):
                assert cfg.sampler.step_rule == key.rsplit("-", 1)[1]
            form = cfg.sampler.get("form")
            assert form == {"iso": "pigdm_iso", "pigdm": "pigdm", "ours": "dps", "dps": None}[sampler], key
            nets.add(cache_path(cfg).name)
    shared = set(mf.figure_jobs("images_proxy_iso")) & set(mf.figure_jobs("images_proxy"))
    assert shared == {"proxy-gaussian_blur_small-ours-T1000", "proxy-gaussian_blur_small-ours-K100-trace"}
    shared = set(mf.figure_jobs("images_proxy_pigdm_sr")) & set(mf.figure_jobs("images_proxy_sr"))
    assert shared == {"proxy-super_resolution_x4-ours-T1000", "proxy-super_resolution_x4-ours-K100-trace"}
    assert len(nets) == 1 and nets != {cache_path(compose_cfg(["experiment=images_small"])).name}
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_figures.py"), "--dry-run", "--out",
                          str(tmp_path), "images_proxy"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(res.stdout.splitlines()) == 8 and "sampler.step_rule=trace" in res.stdout


def test_plot_few_steps_labels_each_setting(tmp_path, monkeypatch):
    """The proxy's DP plane from four job folders: one legend entry per (sampler, steps, rule)."""
    import json

    from vsdr.experiments.writer import write_csv
    from vsdr.plotting import figures as pf

    dirs = {}
    for k, key in enumerate(["proxy-x-ours-T1000", "proxy-x-ours-K25-trace", "proxy-x-dps-T1000",
                             "proxy-x-dps-K25", "proxy-x-iso-K100-trace"]):
        d = tmp_path / "jobs" / key
        d.mkdir(parents=True)
        sampler, knob = ("dps", "zeta") if "-dps-" in key else ("ours", "lam")
        write_csv(d / "metrics.csv", [{"dataset": "digits", "operator": "x", "sigma": 0.05,
                                       "sigma_space": "[-1,1]", "sampler": sampler, "knob": knob,
                                       "value": v, "mse": 0.001 * (1 + v + k), "fd_patch": 0.002 / (1 + v)}
                                      for v in (0.0, 1.0)])
        (d / "metrics.json").write_text(json.dumps(
            {"perception": "fd_patch", "config": {"image_eval": {"fd_patch": 5, "fd_patch_grey": True}}}))
        dirs[key] = d
    seen = []
    orig = pf.plot_dp_overlay

    def spy(rows, title, label_of=None, **kw):
        seen.extend(sorted({label_of(r) for r in rows}))
        return orig(rows, title, label_of=label_of, **kw)

    monkeypatch.setattr(pf, "plot_dp_overlay", spy)
    mf.plot_few_steps("images_proxy", dirs, tmp_path)
    assert (tmp_path / "images_proxy_dp.png").is_file() and (tmp_path / "dp_points.csv").is_file()
    assert seen == ["DPS (ζ), 25 steps", "DPS (ζ), all 1000 steps", "ours, dps form (λ), 25 steps, trace",
                    "ours, dps form (λ), all 1000 steps", "ours, pigdm_iso (λ), 100 steps, trace"]
