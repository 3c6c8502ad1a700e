"""The official PSCGAN written for vsdr (vsdr/models/pscgan_official.py): the published FFHQ
checkpoints' layout (tests/data/pscgan_official_ffhq_keys.tsv, 188 tensors, generator
15,519,187 and critic 9,013,569 parameters), their strict weights-only loading
(vsdr/models/pscgan_checkpoint.py), the forward's noise maps and data range, and
ffhq_deblur_pscgan run end to end at CPU size on a random-weight checkpoint."""
from __future__ import annotations

import ast
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg

from vsdr.data.images import save_images
from vsdr.errors import ConfigError
from vsdr.experiments.validate import validate_config
from vsdr.models.checkpoint import convert
from vsdr.models.pscgan_checkpoint import load_official, shared_groups
from vsdr.models.pscgan_official import (
    Critic,
    EncDec,
    OfficialGenerator,
    PSCGANOfficial,
    noise_sides,
    param_count,
)

KEYS = Path(__file__).parent / "data" / "pscgan_official_ffhq_keys.tsv"


def official_rows() -> list[tuple[str, tuple[int, ...]]]:
    lines = [line for line in KEYS.read_text().splitlines() if not line.startswith("#")]
    rows = [line.split("\t") for line in lines]
    return [(k, tuple(ast.literal_eval(s))) for k, s in rows]


@pytest.fixture(scope="module")
def official():
    torch.manual_seed(0)
    return PSCGANOfficial(EncDec(), Critic()).eval()


def randomise(net: torch.nn.Module, seed: int) -> None:
    """Random values in every tensor, biases included (zeros at init would hide a mix-up)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_state_dict_is_the_published_layout(official):
    rows = official_rows()
    assert len(rows) == 188
    assert [(k, tuple(v.shape)) for k, v in official.state_dict().items()] == rows
    assert param_count(official.gen) == 15_519_187 and param_count(official.disc) == 9_013_569
    # the drips' layers 1 … n−1 are one module (official `[ConvLayer] * (n − 1)`)
    groups = shared_groups(official)
    assert sorted(len(g) for g in groups) == sorted([13, 13, 11, 11, 9, 9, 7, 7])


def test_noise_maps_sit_before_every_decoder_convolution():
    assert noise_sides(128) == [8, 8, 8, 16, 16, 32, 32, 64, 64, 128]
    g = EncDec(32)
    assert g.z_shape == (sum(s * s for s in noise_sides(32)),)
    maps = g.noise_maps(torch.arange(2 * g.z_dim, dtype=torch.float32).view(2, -1))
    assert [tuple(m.shape) for m in maps] == [(2, 1, s, s) for s in noise_sides(32)]
    assert float(maps[0][1, 0, 0, 0]) == g.z_dim and float(maps[-1][0, 0, -1, -1]) == g.z_dim - 1


def test_forward_at_128_shape_determinism_and_noise(official):
    y = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    z0 = torch.zeros(2, official.gen.z_dim)
    with torch.no_grad():
        a, b = official.gen(y, z0), official.gen(y, z0)
        z = torch.randn(2, official.gen.z_dim, generator=torch.Generator().manual_seed(2))
        noisy = official.gen(y, z)
        d = official.disc(a, y)
    assert a.shape == (2, 3, 128, 128) and torch.equal(a, b)        # σ_z = 0: deterministic
    assert not torch.allclose(noisy, a) and torch.isfinite(noisy).all()
    assert d.shape == (2,) and torch.isfinite(d).all()


def test_official_generator_maps_ranges_and_sizes():
    """Model space is [0, 1]: a net whose output is the constant c gives 2c − 1 in vsdr's [−1, 1];
    its input is (y + 1)/2 at 128² (area means of 2×2 blocks from 256²)."""
    G = OfficialGenerator(image_size=256, net_size=128)
    seen = {}

    def fake(y01, z):
        seen["y"] = y01
        return torch.full_like(y01, 0.75)

    G.gen.forward = fake
    y = torch.rand(1, 3, 256, 256) * 2 - 1
    out = G(y, torch.zeros(1, G.z_dim))
    assert out.shape == (1, 3, 256, 256) and torch.allclose(out, torch.full_like(out, 0.5))
    want = (torch.nn.functional.avg_pool2d(y, 2) + 1) / 2
    assert torch.allclose(seen["y"], want, atol=1e-6)
    # the real net with zero weights and the last RGB bias at 0.5 (mid-grey in [0, 1]) gives 0
    H = OfficialGenerator(image_size=64, net_size=32)
    with torch.no_grad():
        for p in H.parameters():
            p.zero_()
        H.gen.decoder.trgbs[-1].conv[0].layers[1].bias.fill_(0.5)
        out = H(torch.rand(1, 3, 64, 64), torch.randn(1, H.z_dim))
    assert out.shape == (1, 3, 64, 64) and torch.allclose(out, torch.zeros_like(out), atol=1e-6)


def _lightning_like(state: dict) -> dict:
    return {"epoch": 9, "global_step": 1000, "pytorch-lightning_version": "1.2.1", "state_dict": state,
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "betas": (0.0, 0.99),
                                                                  "params": [0, 1]}]}], "lr_schedulers": []}


def test_random_weights_load_strictly_bit_for_bit(official, tmp_path):
    randomise(official, 3)
    torch.save(_lightning_like(official.state_dict()), tmp_path / "pscgan-25.ckpt")
    fresh = PSCGANOfficial(EncDec(), Critic())
    load_official(fresh, tmp_path / "pscgan-25.ckpt")
    mine, theirs = fresh.state_dict(), official.state_dict()
    assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)


def _fake_lightning_classes():
    """Lightning 1.2's ModelCheckpoint and AttributeDict under their real module names, without
    Lightning 1.2: what a published checkpoint's pickle names."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks",
             "pytorch_lightning.callbacks.model_checkpoint", "pytorch_lightning.utilities",
             "pytorch_lightning.utilities.parsing"]
    mods = {n: types.ModuleType(n) for n in names}
    mc = type("ModelCheckpoint", (), {"__module__": names[2]})
    ad = type("AttributeDict", (dict,), {"__module__": names[4]})
    mods[names[2]].ModelCheckpoint, mods[names[4]].AttributeDict = mc, ad
    return mods, mc, ad


def test_lightning_objects_are_read_weights_only(official, tmp_path, monkeypatch):
    """A callbacks dict keyed by ModelCheckpoint and an AttributeDict of hparams (refused by a
    plain weights-only load) read as stand-ins; a foreign global is refused in one sentence
    naming it, and `convert` (trusted files) rewrites such a file as a bare state dict."""
    mods, mc, ad = _fake_lightning_classes()
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    ckpt = _lightning_like(official.state_dict())
    ckpt["callbacks"] = {mc: {"best_model_score": torch.tensor(1.0), "dirpath": "x"}}
    ckpt["hyper_parameters"] = ad(lr=1e-3)
    torch.save(ckpt, tmp_path / "pl.ckpt")
    foreign = type("Thing", (), {"__module__": "pytorch_lightning.utilities"})
    mods["pytorch_lightning.utilities"].Thing = foreign
    torch.save({**ckpt, "extra": foreign()}, tmp_path / "foreign.ckpt")
    for n in mods:
        monkeypatch.delitem(sys.modules, n)
    with pytest.raises(Exception, match="Unsupported global|ModelCheckpoint"):
        torch.load(tmp_path / "pl.ckpt", weights_only=True)
    load_official(PSCGANOfficial(EncDec(), Critic()), tmp_path / "pl.ckpt")
    with pytest.raises(ConfigError,
                       match=r"pytorch_lightning.utilities.Thing.*"
                             r"python -m vsdr.models.checkpoint convert .* --trust"):
        load_official(PSCGANOfficial(EncDec(), Critic()), tmp_path / "foreign.ckpt")
    with pytest.raises(ConfigError, match="full unpickling"):
        convert(tmp_path / "foreign.ckpt", tmp_path / "clean.pt")       # no trust: nothing loaded
    assert not (tmp_path / "clean.pt").exists()
    assert convert(tmp_path / "foreign.ckpt", tmp_path / "clean.pt", trust=True) == 188
    load_official(PSCGANOfficial(EncDec(), Critic()), tmp_path / "clean.pt")


@pytest.mark.parametrize("change,match", [
    ("rename", r"missing keys \['gen.decoder.trgbs.4.conv.0.layers.1.bias'\]; "
               r"unexpected keys \['gen.decoder.trgbs.4.conv.0.bias'\]"),
    ("drop", r"missing keys \['disc.linear.1.bias'\]"),
    ("shape", r"shape mismatches \['disc.linear.0.weight \(512, 512\) vs \(512, 2048\)'\]"),
    ("unshare", r"different values for gen.encoder.drips.0.1.layers.0.weight and "
                r"gen.encoder.drips.0.5.layers.0.weight"),
])
def test_a_wrong_file_is_refused_by_name(official, tmp_path, change, match):
    state = dict(official.state_dict())
    if change == "rename":
        state["gen.decoder.trgbs.4.conv.0.bias"] = state.pop("gen.decoder.trgbs.4.conv.0.layers.1.bias")
    elif change == "drop":
        del state["disc.linear.1.bias"]
    elif change == "shape":
        state["disc.linear.0.weight"] = torch.zeros(512, 512)
    else:
        state["gen.encoder.drips.0.5.layers.0.weight"] = state["gen.encoder.drips.0.5.layers.0.weight"] + 1
    torch.save({"state_dict": state}, tmp_path / "bad.ckpt")
    with pytest.raises(ConfigError, match=match):
        load_official(PSCGANOfficial(EncDec(), Critic()), tmp_path / "bad.ckpt")


def test_ffhq_pscgan_defaults_to_the_published_denoiser(tmp_path):
    for exp in ("ffhq_deblur_pscgan", "ffhq_deblur_pscgan_hinoise"):
        cfg = compose_cfg([f"experiment={exp}"])
        assert cfg.sampler.gan.format == "official" and cfg.sampler.gan.sigma_255 == 25
        # at the images' own 256², y carries the noise the checkpoint was trained on: σ_y = 0.2 in
        # [−1, 1] units is 0.1 in [0, 1], and 25/255 = 0.098 (docs/METHOD.md §7, clue 4)
        assert cfg.sampler.gan.generator.net_size == 256 == cfg.sampler.gan.generator.image_size
        if exp == "ffhq_deblur_pscgan":
            assert cfg.noise.sigma / 2 == pytest.approx(cfg.sampler.gan.sigma_255 / 255, abs=0.003)
    resized = compose_cfg(["experiment=ffhq_deblur_pscgan", "sampler.gan.generator.net_size=128"])
    assert resized.sampler.gan.generator.net_size == 128
    save_images(torch.zeros(1, 3, 8, 8), tmp_path / "imgs")
    want = (r"^sampler.gan.ckpt is not set: gan@sampler.gan=official_ffhq is the published PSCGAN "
            r"denoiser .*pscgan-25.ckpt .*no training images")
    with pytest.raises(ConfigError, match=want):
        validate_config(compose_cfg(["experiment=ffhq_deblur_pscgan", f"dataset.root={tmp_path / 'imgs'}"]))
    own = compose_cfg(["experiment=ffhq_deblur_pscgan", "gan@sampler.gan=conv_ffhq"])
    assert own.sampler.gan.generator._target_.endswith("GeneratorConv")
    from vsdr.experiments.build import network_files  # nothing to train for the scheduler
    assert network_files(compose_cfg(["experiment=ffhq_deblur_pscgan"])) == [] != network_files(own)


def test_ffhq_deblur_pscgan_end_to_end_with_a_random_official_checkpoint(official, tmp_path, cache_dir):
    """One 64² test image, N ∈ {1, 2}: the generator runs at its 128² (about 0.5 s a pass on
    one idle core, 9 s in all); no training images, no cache file."""
    from vsdr.experiments.job import run_job

    randomise(official, 4)
    torch.save(_lightning_like(official.state_dict()), tmp_path / "pscgan-25.ckpt")
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    save_images(image, tmp_path / "test")
    cfg = compose_cfg(["experiment=ffhq_deblur_pscgan", "dataset.image_size=64",
                       f"dataset.root={tmp_path / 'test'}", f"sampler.gan.ckpt={tmp_path / 'pscgan-25.ckpt'}",
                       "sampler.values=[1,2]", "data.net_batch=2", "image_metrics.standin=true",
                       "logger=none", "progress=false"])
    rows = run_job(cfg, tmp_path / "job")
    assert [r["value"] for r in rows] == [1.0, 2.0] and all(r["psnr"] > 0 for r in rows)
    meta = json.loads((tmp_path / "job" / "metrics.json").read_text())["model"]
    assert meta["source"] == "sampler.gan.ckpt" and meta["sigma_255"] == 25
    assert meta["generator_params"] == 15_519_187 and meta["critic_params"] == 9_013_569
    assert meta["train_sigma"] == pytest.approx(50 / 255)
    assert not list(cache_dir.glob("*pscgan*"))
