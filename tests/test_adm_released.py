"""guided-diffusion's released unconditional ADM checkpoints (``model=adm_imagenet256``,
``model=adm_lsun``; docs/METHOD.md §8): their exact parameter counts and key lists, built on
torch's ``meta`` device (no memory for the 552M parameters), float16 state dicts loaded strictly
into the float32 model, and a job end to end on a small build of the preset."""
from __future__ import annotations

import csv

import pytest
import torch
from conftest import compose_cfg, load_script
from omegaconf import OmegaConf

from vsdr.errors import ConfigError
from vsdr.experiments.prior import MODEL_PRESETS, bare_network
from vsdr.models import ADMUNet, load_state_strict
from vsdr.models.adm_unet import AttentionBlock

RELEASED = {"adm_imagenet256": "256x256_diffusion_uncond.pt", "adm_lsun": "lsun_bedroom.pt"}
N_PARAMS, N_TENSORS = 552_814_086, 566  # both presets: one architecture


def gd_keys(channels: int, blocks: int, mult: tuple, attn_ds: set, out: int = 6) -> dict:
    """guided-diffusion's ``UNetModel`` state-dict names and shapes, in order, written out from
    its layout: ``time_embed.{0,2}``; ``input_blocks.0.0`` (3×3 conv); per level ``blocks``
    ResBlocks (``in_layers.{0,2}``, ``emb_layers.1`` of width 2·out for scale-shift norm,
    ``out_layers.{0,3}``, a 1×1 ``skip_connection`` when the width changes), each followed by an
    AttentionBlock (``norm``, ``qkv`` (3C, C, 1), ``proj_out`` (C, C, 1)) at the down-sampling
    factors ``attn_ds``, and a down-sampling ResBlock except after the last level;
    ``middle_block`` = ResBlock, attention, ResBlock; the decoder mirrors it with ``blocks + 1``
    ResBlocks per level on the concatenated skips and an up-sampling ResBlock at the end of each
    level but the first; ``out.{0,2}``. Built without any vsdr module."""
    emb = 4 * channels
    keys: dict[str, tuple] = {}

    def lin(name, cin, cout):
        keys[f"{name}.weight"], keys[f"{name}.bias"] = (cout, cin), (cout,)

    def conv(name, cin, cout, k):
        keys[f"{name}.weight"], keys[f"{name}.bias"] = (cout, cin, k, k), (cout,)

    def norm(name, c):
        keys[f"{name}.weight"], keys[f"{name}.bias"] = (c,), (c,)

    def res(name, cin, cout):
        norm(f"{name}.in_layers.0", cin)
        conv(f"{name}.in_layers.2", cin, cout, 3)
        lin(f"{name}.emb_layers.1", emb, 2 * cout)
        norm(f"{name}.out_layers.0", cout)
        conv(f"{name}.out_layers.3", cout, cout, 3)
        if cin != cout:
            conv(f"{name}.skip_connection", cin, cout, 1)

    def attn(name, c):
        norm(f"{name}.norm", c)
        keys[f"{name}.qkv.weight"], keys[f"{name}.qkv.bias"] = (3 * c, c, 1), (3 * c,)
        keys[f"{name}.proj_out.weight"], keys[f"{name}.proj_out.bias"] = (c, c, 1), (c,)

    lin("time_embed.0", channels, emb)
    lin("time_embed.2", emb, emb)
    ch = mult[0] * channels
    conv("input_blocks.0.0", 3, ch, 3)
    skips, ds, i = [ch], 1, 1
    for level, m in enumerate(mult):
        for _ in range(blocks):
            res(f"input_blocks.{i}.0", ch, m * channels)
            ch = m * channels
            if ds in attn_ds:
                attn(f"input_blocks.{i}.1", ch)
            skips.append(ch)
            i += 1
        if level < len(mult) - 1:
            res(f"input_blocks.{i}.0", ch, ch)
            skips.append(ch)
            ds, i = 2 * ds, i + 1
    res("middle_block.0", ch, ch)
    attn("middle_block.1", ch)
    res("middle_block.2", ch, ch)
    i = 0
    for level in reversed(range(len(mult))):
        for j in range(blocks + 1):
            res(f"output_blocks.{i}.0", ch + skips.pop(), mult[level] * channels)
            ch = mult[level] * channels
            n = 1
            if ds in attn_ds:
                attn(f"output_blocks.{i}.1", ch)
                n = 2
            if level and j == blocks:
                res(f"output_blocks.{i}.{n}", ch, ch)
                ds //= 2
            i += 1
    norm("out.0", ch)
    conv("out.2", ch, out, 3)
    return keys


def meta_net(name: str) -> ADMUNet:
    with torch.device("meta"):
        return bare_network(name)


def small(name: str = "adm_imagenet256", seed: int = 0) -> ADMUNet:
    """The preset at 32 base channels and 32-channel heads (8.6M parameters): the same names,
    levels and attention positions, widths / 8."""
    cfg = OmegaConf.to_container(OmegaConf.load(MODEL_PRESETS / f"{name}.yaml"))
    for k in ("name", "ckpt", "file", "published", "net_batch", "preconditioning", "_target_"):
        cfg.pop(k)
    torch.manual_seed(seed)
    net = ADMUNet(**{**cfg, "num_channels": 32, "num_head_channels": 32})
    for p in net.parameters():  # the zero-initialised convs would hide wiring and loading errors
        p.data.normal_(0, 0.05)
    return net


def test_the_key_derivation_reproduces_adm_ffhq():
    """The derivation above, checked on the FFHQ preset whose checkpoint is known to load."""
    keys = gd_keys(128, 1, (1, 1, 2, 2, 4, 4), {16})
    sd = meta_net("adm_ffhq").state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == list(keys.items())
    assert sum(torch.Size(s).numel() for s in keys.values()) == 93_563_910


@pytest.mark.parametrize("name", list(RELEASED))
def test_released_preset_has_guided_diffusions_keys_and_count(name):
    net = meta_net(name)
    sd = net.state_dict()
    # --image_size 256 --num_channels 256 --num_res_blocks 2 --attention_resolutions 32,16,8
    expected = gd_keys(256, 2, (1, 1, 2, 2, 4, 4), {256 // 32, 256 // 16, 256 // 8})
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == list(expected.items())
    assert sum(p.numel() for p in net.parameters()) == N_PARAMS
    assert sum(torch.Size(s).numel() for s in expected.values()) == N_PARAMS
    assert len(sd) == N_TENSORS
    assert tuple(sd["out.2.weight"].shape) == (6, 256, 3, 3)        # --learn_sigma True
    assert tuple(sd["input_blocks.1.0.emb_layers.1.weight"].shape) == (512, 1024)  # scale-shift
    assert "label_emb.weight" not in sd                              # --class_cond False


def test_imagenet256_attention_sizes_and_heads():
    """Attention after every residual block at 32², 16² and 8² (and the middle block's at 8²),
    with heads of 64 channels (--num_head_channels 64): 512 channels at 32² (8 heads), 1024 at
    16² and 8² (16 heads)."""
    net = meta_net("adm_imagenet256")
    seen = []
    for name, m in net.named_modules():
        if isinstance(m, AttentionBlock):
            c = m.qkv.in_channels
            assert m.attention.n_heads == c // 64, name
            seen.append((name.split(".")[0], c))
    assert sorted({c for _, c in seen}) == [512, 1024]
    # encoder: 2 per level at 32², 16², 8²; decoder: 3 per level; middle: 1
    assert [s for s, _ in seen].count("input_blocks") == 6
    assert [s for s, _ in seen].count("output_blocks") == 9
    assert [s for s, _ in seen].count("middle_block") == 1


def test_presets_point_to_the_published_files(tmp_path):
    from vsdr.data.images import save_images
    from vsdr.experiments.validate import validate_config

    save_images(torch.zeros(1, 3, 256, 256), tmp_path / "imgs")
    for name, file in RELEASED.items():
        cfg = compose_cfg([f"model={name}"])
        assert file in cfg.model.file and "openai/guided-diffusion" in cfg.model.published
        assert cfg.model.ckpt is None and cfg.model.learn_sigma is True
        cfg = compose_cfg(["experiment=ffhq_deblur_dps", f"model={name}", f"dataset.root={tmp_path / 'imgs'}",
                           f"model.ckpt={tmp_path / file}", "image_metrics.standin=true"])
        with pytest.raises(ConfigError, match=rf"model.ckpt=.*{file} does not exist: .*{file}.* \(the "
                                              rf"weights of model={name}\) is expected there; it is "
                                              r"published with guided-diffusion \(github.com/openai"):
            validate_config(cfg)
    assert compose_cfg(["model=adm_lsun"]).model.dropout == 0.1  # --dropout 0.1 (training only)


def fp16_like(net: torch.nn.Module) -> dict:
    """``net``'s state dict as a model after guided-diffusion's ``convert_to_fp16`` holds it:
    the convolutions (Conv1d/Conv2d) of the torso (input, middle and output blocks) in float16,
    everything else in float32."""
    half = {f"{n}.{p}" for n, m in net.named_modules()
            if n.split(".")[0] in ("input_blocks", "middle_block", "output_blocks")
            and isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)) for p in ("weight", "bias")}
    return {k: v.half() if k in half else v.clone() for k, v in net.state_dict().items()}


def test_float16_state_dict_loads_strictly_cast_to_float32(tmp_path):
    net = small()
    state = fp16_like(net)
    n_half = sum(v.dtype == torch.float16 for v in state.values())
    assert 0 < n_half < len(state)
    torch.save(state, tmp_path / "fp16.pt")
    fresh = small(seed=1)
    load_state_strict(fresh, tmp_path / "fp16.pt")
    for k, v in fresh.state_dict().items():
        assert v.dtype == torch.float32, k
        assert torch.equal(v, state[k].float()), k  # the file's values, exactly
    # all float16 (and bfloat16) load too
    torch.save({k: v.half() for k, v in net.state_dict().items()}, tmp_path / "all16.pt")
    load_state_strict(fresh, tmp_path / "all16.pt")
    assert all(v.dtype == torch.float32 for v in fresh.state_dict().values())
    torch.save({k: v.bfloat16() for k, v in net.state_dict().items()}, tmp_path / "bf16.pt")
    load_state_strict(fresh, tmp_path / "bf16.pt")
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([500])
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, t), net(x, t), atol=0.05, rtol=0.05)


def test_float16_file_is_still_checked_strictly(tmp_path):
    state = fp16_like(small())
    bad = dict(state)
    bad["out.2.weight"] = bad["out.2.weight"][:3].half()  # a 3-output (fixed-variance) head
    torch.save(bad, tmp_path / "shape.pt")
    with pytest.raises(ConfigError, match=r"shape mismatches \['out.2.weight \(3, 32, 3, 3\) vs \(6, 32"):
        load_state_strict(small(), tmp_path / "shape.pt")
    ints = dict(state)
    ints["out.0.weight"] = torch.ones(32, dtype=torch.int64)
    torch.save(ints, tmp_path / "int.pt")
    with pytest.raises(ConfigError,
                       match=r"dtype mismatches \['out.0.weight torch.int64 vs torch.float32'\]"):
        load_state_strict(small(), tmp_path / "int.pt")


def _script():
    return load_script("check_checkpoint")


def test_check_checkpoint_knows_the_released_presets(tmp_path, capsys):
    script = _script()
    net = bare_network("adm_small")
    torch.save({k: v.half() for k, v in net.state_dict().items()}, tmp_path / "small16.pt")
    assert script.main([str(tmp_path / "small16.pt"), "--model", "adm_small"]) == 0
    out = capsys.readouterr().out
    assert "float16 ×198" in out and "cast to the model's torch.float32" in out and "loads strictly" in out
    # the 552M-parameter network is built on the meta device: counts and names, no memory
    assert script.main([str(tmp_path / "small16.pt"), "--model", "adm_imagenet256"]) == 1
    out = capsys.readouterr().out
    assert "model adm_imagenet256: 552,814,086 parameters, 566 tensors" in out
    assert "missing: 396" in out and "shapes: 169" in out and "does NOT load strictly" in out


def test_small_imagenet256_job_end_to_end_from_a_float16_file(tmp_path, cache_dir):
    """``model=adm_imagenet256`` at 32 channels, weights saved as a float16 state dict and given
    with ``model.ckpt``: DPS on 64² images, Gaussian blur, σ_y = 0.05, T = 3."""
    from ffhq_small import make_small_ffhq

    from vsdr.experiments.job import run_job

    root = make_small_ffhq(tmp_path / "data", n_images=1)
    torch.save(fp16_like(small()), tmp_path / "imagenet_small.pt")
    cfg = compose_cfg(["experiment=ffhq_deblur_dps", "model=adm_imagenet256", "model.num_channels=32",
                       "model.num_head_channels=32", f"model.ckpt={tmp_path / 'imagenet_small.pt'}",
                       "operator=gaussian_blur", "noise.sigma=0.05", "sampler.values=[0.3]",
                       "dataset.image_size=64", f"dataset.root={root / 'test'}", "diffusion.T=3",
                       "image_metrics.standin=true", "logger=none", "progress=false"])
    rows = run_job(cfg, tmp_path / "job")
    with open(tmp_path / "job" / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) == 1 and float(table[0]["psnr"]) > 0
    info = (tmp_path / "job" / "metrics.json").read_text()
    assert "imagenet_small.pt" in info and "model.ckpt" in info


def test_cast_to_model_casts_floats_only():
    from vsdr.models.score import cast_to_model, kind_mismatches

    own = {"a": torch.zeros(2), "b": torch.zeros(2), "n": torch.zeros((), dtype=torch.int64)}
    f32 = torch.ones(2)
    state = {"a": torch.full((2,), 1 / 3).half(), "b": f32, "n": torch.tensor(7), "x": torch.ones(1)}
    out = cast_to_model(state, own)
    assert out["a"].dtype == torch.float32 and torch.equal(out["a"], state["a"].float())
    assert out["b"] is f32 and out["n"] is state["n"] and out["x"] is state["x"]  # nothing copied
    assert state["a"].dtype == torch.float16  # the input is left as it was
    assert kind_mismatches(state, own) == []
    assert kind_mismatches({"n": torch.tensor(7.0)}, own) == ["n torch.float32 vs torch.int64"]
