"""One job shape for every kind of data: image jobs resume, shard and merge like 2D jobs, a
new sampler is its module plus its YAML, unknown config keys are refused by name, and the
package has no import cycles."""
from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, ROOT, compose_cfg, kill_once_logged
from test_image_job import TINY, write_blobs

from vsdr.config import instantiate
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.experiments.shards import gather_shards

PACKAGE = ROOT / "vsdr"


# ------------------------------------------------------------------ import graph
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every ``vsdr`` module and the ``vsdr`` modules it imports anywhere in its body
    (function-level imports included: they must not hide a cycle)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "vsdr"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                if mod.split(".")[0] != "vsdr":
                    continue
                for a in node.names:  # `from vsdr.x import y` imports vsdr.x.y when that is a module
                    deps.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycles_inside_vsdr():
    graph = import_graph()
    assert "vsdr.experiments.job" in graph and "vsdr.tasks.images" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# ------------------------------------------------------------------ a new sampler
TOY_MODULE = '''
import torch
from vsdr.samplers.base import Knob, SampleResult, Sampler


class ShrinkSampler(Sampler):
    """x̂ = t · y: a toy sampler that never calls the network."""

    name = "shrink"
    label = "shrink toy"
    knobs = (Knob("t", "τ", 0.0, 2.0, what="the shrinkage factor"),)

    def __init__(self, offset: float = 0.0, knob=None, progress=True):
        super().__init__(knob, progress)
        self.offset = float(offset)

    def __call__(self, model, y, operator, sigma_y, knob, seeds, schedule, keep_trajectory=False):
        t = torch.as_tensor(knob, dtype=y.dtype).view(-1, 1)
        return SampleResult(t * y + self.offset, 0)
'''
TOY_YAML = """_target_: toy_shrink.ShrinkSampler
knob: t
values: [0.0, 0.5, 1.0]
offset: 0.0
"""


@pytest.fixture
def toy_sampler(tmp_path, monkeypatch):
    """A sampler module and its YAML, outside the repository (found through hydra.searchpath)."""
    (tmp_path / "toy_shrink.py").write_text(TOY_MODULE)
    (tmp_path / "conf" / "sampler").mkdir(parents=True)
    (tmp_path / "conf" / "sampler" / "shrink.yaml").write_text(TOY_YAML)
    monkeypatch.syspath_prepend(str(tmp_path))
    return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "sampler=shrink"]


def test_a_new_sampler_is_its_module_and_its_yaml(toy_sampler, tmp_path, cache_dir):
    rows = run_job(compose_cfg([*FAST, *toy_sampler]), tmp_path / "job")
    assert [(r["sampler"], r["knob"], r["value"]) for r in rows] == \
        [("shrink", "t", 0.0), ("shrink", "t", 0.5), ("shrink", "t", 1.0)]
    z = np.load(tmp_path / "job" / "samples.npz")
    np.testing.assert_allclose(z["samples"][1], 0.5 * z["y"], rtol=1e-6)  # x̂ = t · y, by hand
    x0 = z["x0"].astype(np.float64)
    assert rows[0]["mse"] == pytest.approx(float((x0 ** 2).sum(1).mean()), rel=1e-6)  # t = 0: x̂ = 0
    assert (tmp_path / "job" / "dp_curve.png").is_file()
    from vsdr.samplers import knob_symbol, sampler_label

    assert knob_symbol("t") == "τ" and sampler_label("shrink") == "shrink toy"
    # its declared range is checked with the config, before any training
    with pytest.raises(ConfigError, match=re.escape("sampler.values has t=3, but t must lie in [0, 2]: "
                                                    "it is the shrinkage factor")):
        run_job(compose_cfg([*FAST, *toy_sampler, "sampler.values=[0,3]"]), tmp_path / "bad")
    assert not cache_dir.exists() or not list(cache_dir.glob("*.pt")) or (tmp_path / "job").is_dir()
    with pytest.raises(ConfigError, match="sampler.knob=s is not one of sampler=shrink's knobs"):
        run_job(compose_cfg([*FAST, *toy_sampler, "sampler.knob=s"]), tmp_path / "bad2")


# ------------------------------------------------------------------ unknown keys
@pytest.mark.parametrize("overrides,message", [
    (["+operator.scale=4"], "operator.scale is not an argument of Identity (operator)"),
    (["experiment=images_small", "+operator.scale=4"], "operator.scale is not an argument of GaussianBlur"),
    (["+sampler.zeta_d=0.3"], "sampler.zeta_d is not an argument of VarianceScaledSampler"),
    (["+dataset.radius=1"], "dataset.radius is not an argument of Pinwheel"),
    (["+diffusion.steps=10"], "diffusion.steps is not an argument of VPSchedule.linear"),
    (["+model.width=3"], "model.width is not an argument of ScoreMLP"),
    (["sampler=pscgan", "+sampler.gan.generator.depth=2"],
     "sampler.gan.generator.depth is not an argument of GeneratorMLP"),
])
def test_unknown_key_names_the_key_and_the_component(overrides, message, tmp_path, cache_dir):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_job(compose_cfg([*FAST, *overrides]), tmp_path / "job")
    assert not (tmp_path / "job" / "metrics.csv").exists()


def test_constructor_refusal_is_a_config_error(tmp_path, cache_dir):
    """A value the constructor refuses (ValueError) is one sentence naming the component (a job
    stops earlier, in validation: tests/test_bad_input.py::test_choices_and_model_checked_with_the_config)."""
    with pytest.raises(ConfigError, match=r"^sampler: sampler.form='nosuch' is not one of"):
        instantiate(compose_cfg([*FAST, "sampler.form=nosuch"]).sampler, "sampler")


# ------------------------------------------------------------------ images on the one path
@pytest.fixture
def blobs(tmp_path):
    write_blobs(tmp_path / "train", 6, 0)
    write_blobs(tmp_path / "test", 5, 1)
    return [*TINY, f"dataset.root={tmp_path / 'test'}", f"dataset.train_root={tmp_path / 'train'}",
            "data.limit=5", "image_metrics.fid=false", "lam=[0,0.5,1]"]


def test_image_metrics_bit_identical_across_batch_sizes_and_shards(blobs, tmp_path, cache_dir):
    """An image job's metrics.csv and items.csv are the same bytes whatever data.batch_size,
    and when its 5 images are split into 2 shards and merged."""
    texts = {}
    for bs in ["null", "2"]:
        d = tmp_path / f"bs{bs}"
        run_job(compose_cfg([*blobs, f"data.batch_size={bs}"]), d)
        texts[bs] = ((d / "metrics.csv").read_bytes(), (d / "items.csv").read_bytes())
    assert texts["2"] == texts["null"]
    shards = []
    for i, bs in enumerate(["null", "1"]):  # 3 + 2 images
        shards.append(tmp_path / f"shard{i}")
        run_job(compose_cfg([*blobs, "data.num_shards=2", f"data.shard={i}", f"data.batch_size={bs}"]),
                shards[-1])
    assert len(np.load(shards[1] / "samples.npz")["index"]) == 2
    rows = gather_shards(shards[::-1], tmp_path / "merged")
    assert ((tmp_path / "merged" / "metrics.csv").read_bytes(),
            (tmp_path / "merged" / "items.csv").read_bytes()) == texts["null"]
    full = json.loads((tmp_path / "bsnull" / "metrics.json").read_text())
    merged = json.loads((tmp_path / "merged" / "metrics.json").read_text())
    assert merged["config_hash"] == full["config_hash"] and rows == full["rows"]
    assert (tmp_path / "merged" / "image_grid.png").is_file()
    with pytest.raises(ConfigError, match="data.num_shards=6 does not fit the test images"):
        run_job(compose_cfg([*blobs, "data.num_shards=6"]), tmp_path / "too_many")


def test_killed_image_job_resumes_from_its_chunks(blobs, tmp_path, cache_dir):
    """SIGKILL a real image job once it saved a chunk; the rerun reuses the saved chunks,
    samples each of the others once, and ends with the numbers of an uninterrupted job."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VSDR_CACHE_DIR": str(cache_dir)}
    cmd = [sys.executable, str(ROOT / "run.py"), *blobs, "data.batch_size=1", "diffusion.T=40",
           "hydra.run.dir=job"]
    ref = run_job(compose_cfg([*blobs, "diffusion.T=40"]), tmp_path / "ref")  # caches the network
    log = tmp_path / "job" / "run.log"
    assert kill_once_logged(cmd, tmp_path, env, log) == -signal.SIGKILL
    assert not (tmp_path / "job" / "metrics.json").exists()
    first = Counter(re.findall(r"sampled chunk (\d+)\.\.", log.read_text()))
    assert list((tmp_path / "job" / "partial").glob("*.pt"))
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    text = log.read_text()
    assert "reused" in text and text.count("vsdr: computed job") == 1
    chunks = Counter(re.findall(r"sampled chunk (\d+)\.\.", text))
    assert sorted(chunks) == [str(i) for i in range(5)] and set(chunks.values()) == {1}, (first, chunks)
    rows = json.loads((tmp_path / "job" / "metrics.json").read_text())["rows"]
    assert [(r["mse"], r["psnr"]) for r in rows] == [(r["mse"], r["psnr"]) for r in ref]
    assert not (tmp_path / "job" / "partial").exists()


def test_image_and_point_jobs_take_the_same_path(blobs, tmp_path, cache_dir, monkeypatch):
    """Both kinds go through job.sample_all with a ChunkStore and the fixed-row network."""
    import vsdr.experiments.job as job
    from vsdr.experiments.resume import ChunkStore

    seen = []
    real = job.sample_all

    def spy(sampler, model, *args, **kwargs):
        store = kwargs.get("store", args[-1] if len(args) == 10 else None)
        seen.append((type(model.net).__name__, isinstance(store, ChunkStore)))
        return real(sampler, model, *args, **kwargs)

    monkeypatch.setattr(job, "sample_all", spy)
    run_job(compose_cfg(blobs), tmp_path / "img")
    run_job(compose_cfg(FAST), tmp_path / "pts")
    assert seen == [("FixedShapeNet", True), ("FixedShapeNet", True)]


# ------------------------------------------------------------------ bugs found as a new user
def test_analytic_figures_with_a_sampler_whose_knob_is_not_lam(tmp_path, cache_dir):
    """`experiment=mixture_dp score=exact_prior sampler=dps` used to crash after sampling
    (keep_trajectory passed to a sampler without it); now it writes its files, and draws
    trajectories only for a λ knob."""
    rows = run_job(compose_cfg(["experiment=mixture_dp", "score=exact_prior", "sampler=dps",
                                "data.n_test=64", "diffusion.T=50", "sampler.values=[0,0.05]",
                                "progress=false"]), tmp_path / "dps")
    assert [r["knob"] for r in rows] == ["zeta", "zeta"]
    for name in ("posterior.png", "dp_curve.png", "dp_curve_kl.png", "metrics.json"):
        assert (tmp_path / "dps" / name).is_file(), name
    assert not (tmp_path / "dps" / "trajectories.png").exists()
    run_job(compose_cfg(["experiment=mixture_dp", "data.n_test=64", "diffusion.T=50", "lam=[0,1]",
                         "progress=false", "plots.trajectories=2"]), tmp_path / "ours")
    assert (tmp_path / "ours" / "trajectories.png").is_file()


def test_failing_image_job_is_a_failed_wandb_run(blobs, tmp_path, cache_dir):
    """An image job that fails (NaN weights) finishes its wandb run with exit code 1 (through
    run.py, so that wandb has flushed its run file when the process ends)."""
    from conftest import run_cli
    from wandb_reader import run_summary

    from vsdr.experiments.prior import build_network

    cfg = compose_cfg(blobs)
    net = build_network(cfg, VPScheduleFor(cfg))
    torch.save({"state_dict": {k: torch.full_like(v, float("nan")) for k, v in net.state_dict().items()}},
               tmp_path / "nan.pt")
    args = [*[o for o in blobs if o != "logger=none"], "logger=wandb", f"model.ckpt={tmp_path / 'nan.pt'}",
            "hydra.run.dir=job"]
    res = run_cli(args, cwd=tmp_path, env_extra={"VSDR_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline",
                                                  "WANDB_SILENT": "true"})
    assert res.returncode == 3 and "NaN" in res.stderr, res.stderr[-2000:]
    files = list((tmp_path / "job" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1 and run_summary(files[0])["exit_code"] == 1


def VPScheduleFor(cfg):  # noqa: N802 - the job's schedule for a config
    from vsdr.experiments.build import build_schedule

    return build_schedule(cfg)


def test_make_figures_takes_figure_names():
    res = subprocess.run(["make", "-n", "figures", "images_small", "fig5"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "scripts/make_figures.py images_small fig5" in res.stdout


def test_the_repository_refers_to_no_document_outside_it():
    """Code, configs and docs cite docs/METHOD.md, docs/RESULTS.md and each other only."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    outside = re.compile(r"REFERENCES\.md|ARCHITECTURE\.md|\.\./shared")
    bare_method = re.compile(r"(?<![/\w])METHOD\.md")  # outside docs/ it must be docs/METHOD.md
    bad = []
    for name in files:
        path = ROOT / name
        if name.startswith(".ci/") or path.suffix not in (".py", ".yaml", ".md", ".toml", ".cfg", ""):
            continue
        if path.is_file():
            text = path.read_text(errors="ignore")
            bad += [f"{name}: {m.group(0)}" for m in outside.finditer(text)]
            if not name.startswith("docs/"):
                bad += [f"{name}: {m.group(0)}" for m in bare_method.finditer(text)]
    assert not bad, bad[:10]
