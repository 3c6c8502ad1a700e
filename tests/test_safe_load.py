"""Checkpoints are data (issue 20, item 1): a file handed to vsdr as ``model.ckpt``,
``sampler.gan.ckpt``, a cache or a resume chunk is read with ``weights_only=True``; one whose
pickle would run code runs nothing and stops the job with one sentence (exit 2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import FAST, ROOT, compose_cfg, load_script, run_cli

from vsdr.diffusion import VPSchedule
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.experiments.prior import build_network, cache_path
from vsdr.experiments.pscgan import gan_cache_path
from vsdr.experiments.resume import ChunkStore, results_hash
from vsdr.experiments.writer import write_checkpoint
from vsdr.models.checkpoint import CodeInCheckpoint, read_checkpoint
from vsdr.models.checkpoint import main as checkpoint_main
from vsdr.models.score import load_state_strict


class _RunsCode:
    """Pickles as a call of ``os.system``: unpickling it creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def code_carrying(path: Path, marker: Path, state: dict | None = None) -> Path:
    """A torch file that looks like a checkpoint (a state dict under ``state_dict``) and runs
    ``touch marker`` when fully unpickled."""
    torch.save({"state_dict": state or {"w": torch.ones(2)}, "hook": _RunsCode(marker)}, path)
    return path


def refusal(name: str, path: Path) -> str:
    """The sentence written out by hand: what the file is, why it is refused, how to convert."""
    return (f"{name} holds Python objects beyond tensors, and loading it would run code from it, so "
            f"it is refused: if you trust the file, convert it to a plain state dict with "
            f"`python -m vsdr.models.checkpoint convert {path} {path.parent / (path.stem + '-weights.pt')} "
            f"--trust` and give that file instead")


def score_net():
    return build_network(compose_cfg(FAST), VPSchedule.linear(50))


def test_code_in_model_ckpt_runs_nothing_on_the_cli(tmp_path):
    marker = tmp_path / "MARKER"
    evil = code_carrying(tmp_path / "evil.pt", marker, score_net().state_dict())
    res = run_cli([*FAST, f"model.ckpt={evil}", "hydra.run.dir=job"], cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == "vsdr: " + refusal(f"model.ckpt={evil}", evil)
    assert "Traceback" not in res.stderr
    assert not marker.exists()
    assert not (tmp_path / "job" / "metrics.csv").exists()


def test_code_in_gan_ckpt_runs_nothing(tmp_path, cache_dir):
    marker = tmp_path / "MARKER"
    evil = code_carrying(tmp_path / "gan.pt", marker)
    cfg = compose_cfg([*FAST, "sampler=pscgan", f"sampler.gan.ckpt={evil}"])
    with pytest.raises(CodeInCheckpoint) as e:
        run_job(cfg, tmp_path / "job")
    assert str(e.value) == refusal(f"sampler.gan.ckpt={evil}", evil)
    assert not marker.exists()
    assert not cache_dir.exists()  # nothing trained instead


@pytest.mark.parametrize("kind", ["score", "pscgan"])
def test_code_in_a_cache_file_runs_nothing(kind, tmp_path, cache_dir):
    marker = tmp_path / "MARKER"
    cfg = compose_cfg([*FAST, *(["sampler=pscgan"] if kind == "pscgan" else [])])
    path = gan_cache_path(cfg) if kind == "pscgan" else cache_path(cfg)
    path.parent.mkdir(parents=True)
    code_carrying(path, marker)
    with pytest.raises(CodeInCheckpoint) as e:
        run_job(cfg, tmp_path / "job")
    what = "cached PSCGAN checkpoint" if kind == "pscgan" else "cached checkpoint"
    assert str(e.value) == refusal(f"the {what} {path}", path)
    assert not marker.exists()
    assert not (tmp_path / "job" / "metrics.json").exists()


def chunked_job(tmp_path: Path) -> tuple:
    """A job with a given checkpoint (nothing to train), sampled in chunks of 32: its config
    and the store its chunks go to."""
    torch.save(score_net().state_dict(), tmp_path / "net.pt")
    cfg = compose_cfg([*FAST, f"model.ckpt={tmp_path / 'net.pt'}", "data.batch_size=32"])
    return cfg, ChunkStore(tmp_path / "job", results_hash(cfg))


def test_code_in_a_resume_chunk_runs_nothing(tmp_path, cache_dir):
    marker = tmp_path / "MARKER"
    cfg, store = chunked_job(tmp_path)
    store.dir.mkdir(parents=True)
    chunk = store.path(0, 32)
    torch.save({"samples": torch.zeros(2, 32, 2), "nfe": 50, "hook": _RunsCode(marker)}, chunk)
    with pytest.raises(CodeInCheckpoint) as e:
        run_job(cfg, tmp_path / "job")
    assert str(e.value) == refusal(f"the resume chunk {chunk}", chunk)
    assert not marker.exists()
    assert not (tmp_path / "job" / "metrics.json").exists()


def test_truncated_resume_chunk_is_sampled_again(tmp_path, cache_dir, caplog):
    cfg, store = chunked_job(tmp_path)
    store.save(0, 32, torch.zeros(2, 32, 2), 50)
    chunk = store.path(0, 32)
    chunk.write_bytes(chunk.read_bytes()[:100])
    with caplog.at_level("INFO"):
        rows = run_job(cfg, tmp_path / "job")
    assert len(rows) == 2 and (tmp_path / "job" / "metrics.json").is_file()
    assert f"chunk {chunk.name} is unreadable" in caplog.text and "sampling it again" in caplog.text
    assert "reused" not in caplog.text  # the damaged chunk was not used


def real_checkpoint(tmp_path: Path) -> tuple[dict, Path]:
    net = score_net()
    state = net.state_dict()
    torch.save(state, tmp_path / "real.pt")
    return state, tmp_path / "real.pt"


def test_truncated_and_non_torch_files_are_one_sentence(tmp_path):
    _, real = real_checkpoint(tmp_path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    with pytest.raises(ConfigError) as e:
        read_checkpoint(cut, "model.ckpt")
    assert str(e.value) == (f"model.ckpt={cut} is a truncated or damaged torch checkpoint (the zip "
                            "archive has no central directory): copy or write it again")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ConfigError) as e:
        read_checkpoint(text, "model.ckpt")
    assert str(e.value) == (f"model.ckpt={text} is not a readable torch checkpoint (its first bytes are "
                            "neither a zip archive's nor a legacy torch file's): give the path of a "
                            "file written by torch.save")
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("a.txt", "hi")
    with pytest.raises(ConfigError, match=r"other.zip is not a readable torch checkpoint \(a zip archive "
                                          r"without torch's data.pkl\)"):
        read_checkpoint(other_zip, "model.ckpt")
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(8)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:-20])
    with pytest.raises(ConfigError, match=r"legacy.pt is a truncated or damaged torch checkpoint"):
        read_checkpoint(legacy, "model.ckpt")


def assert_same_weights(net: torch.nn.Module, state: dict) -> None:
    loaded = net.state_dict()
    assert loaded.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k


def test_real_formats_load_bit_for_bit(tmp_path):
    state, real = real_checkpoint(tmp_path)  # guided-diffusion style: a plain state dict
    assert_same_weights(load_into_fresh(real), state)
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert_same_weights(load_into_fresh(legacy), state)
    old = tmp_path / "old-cache.pt"  # the caches vsdr wrote before: primitives beside the state
    torch.save({"state_dict": state, "training_key": {"dataset": {"name": "pinwheel"}, "n_train": 2000,
                                                      "model": {"hidden": [64, 64], "act": None}},
                "train_seconds": 1.5}, old)
    assert_same_weights(load_into_fresh(old), state)
    new = write_checkpoint(tmp_path / "new-cache.pt", state, {"training_key": {"n_train": 2000},
                                                               "train_seconds": 2.5})
    assert set(read_checkpoint(new)) == set(state)  # a plain state dict; the metadata beside it
    assert json.loads(new.with_suffix(".json").read_text()) == {"training_key": {"n_train": 2000},
                                                                "train_seconds": 2.5}
    assert_same_weights(load_into_fresh(new), state)


def load_into_fresh(path: Path) -> torch.nn.Module:
    torch.manual_seed(1)  # other weights than the saved ones
    net = score_net()
    load_state_strict(net, path)
    return net


def test_the_cache_a_job_writes_is_plain_with_its_metadata_beside_it(tmp_path, cache_dir):
    cfg = compose_cfg(FAST)
    run_job(cfg, tmp_path / "job")
    path = cache_path(cfg)
    assert all(isinstance(v, torch.Tensor) for v in read_checkpoint(path).values())
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["training_key"]["max_steps"] == 60 and meta["train_seconds"] > 0


def test_convert_needs_trust_and_writes_a_plain_state_dict(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    state, _ = real_checkpoint(tmp_path)
    evil = code_carrying(tmp_path / "evil.pt", marker, state)
    out = tmp_path / "plain.pt"
    res = subprocess.run([sys.executable, "-m", "vsdr.models.checkpoint", "convert", str(evil), str(out)],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [  # not without --trust
        f"vsdr: converting loads {evil} with full unpickling, which runs any code the file carries: "
        "add --trust if you trust where it came from"]
    assert not marker.exists() and not out.exists()
    assert checkpoint_main(["convert", str(evil), str(out), "--trust"]) == 0
    assert marker.exists()  # the trusted load ran the file's code, as asked
    assert_same_weights(load_into_fresh(out), state)


def test_check_checkpoint_script_runs_nothing(tmp_path, capsys):
    script = load_script("check_checkpoint")
    marker = tmp_path / "MARKER"
    evil = code_carrying(tmp_path / "evil.pt", marker)
    assert script.main([str(evil), "--model", "mlp2d"]) == 1
    assert capsys.readouterr().out.strip() == refusal(f"the checkpoint {evil}", evil)
    assert not marker.exists()
