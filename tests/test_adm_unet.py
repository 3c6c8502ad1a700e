"""The ADM UNet: guided-diffusion's names and shapes, strict loading, legacy attention."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_cfg, load_script

from vsdr.errors import ConfigError
from vsdr.models import ADMUNet, load_state_strict
from vsdr.models.adm_unet import QKVAttentionLegacy


def _instantiate(name: str) -> ADMUNet:
    from omegaconf import OmegaConf

    from vsdr.config import instantiate
    from vsdr.experiments.prior import MODEL_META

    cfg = compose_cfg([f"model={name}"])
    node = {k: v for k, v in OmegaConf.to_container(cfg.model).items()
            if k not in (*MODEL_META, "preconditioning")}
    return instantiate(node, "model")


def _tiny(**kw) -> ADMUNet:
    base = dict(image_size=16, num_channels=32, channel_mult=(1, 2), attention_resolutions=(8,),
                num_heads=2, num_head_channels=-1)
    return ADMUNet(**{**base, **kw})


@pytest.fixture(scope="module")
def ffhq() -> ADMUNet:
    return _instantiate("adm_ffhq")


def test_ffhq_parameter_count_and_shapes(ffhq):
    sd = ffhq.state_dict()
    assert sum(p.numel() for p in ffhq.parameters()) == 93_563_910
    assert len(sd) == 362
    assert tuple(sd["input_blocks.0.0.weight"].shape) == (128, 3, 3, 3)
    assert tuple(sd["out.2.weight"].shape) == (6, 128, 3, 3)
    assert tuple(sd["time_embed.0.weight"].shape) == (512, 128)
    qkv = [k for k in sd if k.endswith(".qkv.weight")]
    assert qkv, "no attention blocks"
    for k in qkv:
        c = sd[k.replace("qkv.weight", "norm.weight")].shape[0]
        assert tuple(sd[k].shape) == (3 * c, c, 1)
    # the key families the checkpoint uses (docs/METHOD.md §8)
    for key in ["time_embed.2.bias", "input_blocks.1.0.in_layers.2.weight",
                "input_blocks.1.0.emb_layers.1.weight", "input_blocks.1.0.out_layers.3.weight",
                "middle_block.0.in_layers.0.weight", "middle_block.1.proj_out.weight",
                "middle_block.2.out_layers.3.bias", "output_blocks.0.0.skip_connection.weight",
                "out.0.weight"]:
        assert key in sd, key


def test_ffhq_state_dict_reloads_strictly(ffhq, tmp_path):
    path = tmp_path / "ffhq_like.pt"
    torch.save(ffhq.state_dict(), path)  # ~374 MB, the size of ffhq_10m.pt
    fresh = _instantiate("adm_ffhq")
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)
    load_state_strict(fresh, path)
    for (k, a), b in zip(ffhq.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    path.unlink()


def test_ffhq_attention_only_at_16(ffhq):
    # the resolution of each encoder block, from its down-sampling blocks
    ds, res = 1, {}
    for i, block in enumerate(ffhq.input_blocks):
        if hasattr(block[0], "updown") and block[0].updown:
            ds *= 2
        res[i] = 256 // ds
    attn = [int(n.split(".")[1]) for n, m in ffhq.named_modules()
            if n.startswith("input_blocks.") and n.count(".") == 2 and hasattr(m, "qkv")]
    assert attn and all(res[i] == 16 for i in attn)


def test_small_config_size_and_forward():
    net = _instantiate("adm_small")
    assert sum(p.numel() for p in net.parameters()) == 1_371_974
    torch.manual_seed(0)
    for p in net.parameters():  # the zero-initialised output conv would hide wiring errors
        p.data.normal_(0, 0.05)
    x = torch.randn(2, 3, 64, 64)
    out = net(x, torch.tensor([0, 999]))
    assert out.shape == (2, 6, 64, 64) and torch.isfinite(out).all()
    # batch of 2 = two batches of 1 (no cross-sample mixing)
    one = net(x[1:], torch.tensor([999]))
    torch.testing.assert_close(out[1:], one, atol=1e-5, rtol=1e-4)


def test_legacy_attention_matches_hand_computed():
    torch.manual_seed(1)
    heads, ch, length, bs = 2, 4, 5, 3
    qkv = torch.randn(bs, 3 * heads * ch, length, dtype=torch.float64)
    out = QKVAttentionLegacy(heads)(qkv)
    # legacy order: the channel axis is [head0: q k v, head1: q k v]
    expect = []
    for h in range(heads):
        blk = qkv[:, 3 * ch * h: 3 * ch * (h + 1)]
        q, k, v = blk[:, :ch], blk[:, ch:2 * ch], blk[:, 2 * ch:]
        w = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(ch), dim=-1)  # (b, t, s)
        expect.append((w @ v.transpose(1, 2)).transpose(1, 2))            # (b, c, t)
    torch.testing.assert_close(out, torch.cat(expect, dim=1))


def test_zero_init_output_and_six_channels():
    net = _tiny()
    out = net(torch.randn(1, 3, 16, 16), torch.tensor([5]))
    assert out.shape == (1, 6, 16, 16)
    assert torch.count_nonzero(out) == 0  # `out.2` is zero-initialised, as in guided-diffusion
    assert _tiny(learn_sigma=False)(torch.randn(1, 3, 16, 16), torch.tensor([5])).shape[1] == 3


def test_channels_must_be_multiples_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        _tiny(num_channels=16)


def test_state_dict_roundtrip_and_partial_fails(tmp_path):
    torch.manual_seed(2)
    net = _tiny()
    for p in net.parameters():
        p.data.normal_()
    path = tmp_path / "full.pt"
    torch.save(net.state_dict(), path)
    fresh = _tiny()
    load_state_strict(fresh, path)
    for (k, a), b in zip(net.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k

    partial = dict(net.state_dict())
    partial.pop("out.2.weight")
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ConfigError,
                       match=r"missing keys \['out.2.weight'\].*unexpected keys \['extra.weight'\]"):
        load_state_strict(_tiny(), tmp_path / "partial.pt")
    with pytest.raises(ConfigError, match="shape mismatches"):
        load_state_strict(_tiny(num_channels=64), path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_state_strict(_tiny(), tmp_path / "nope.pt")


def test_check_checkpoint_script(tmp_path, capsys):
    script = load_script("check_checkpoint")
    net = _instantiate("adm_small")
    sd = net.state_dict()
    torch.save(sd, tmp_path / "ok.pt")
    sd = dict(sd)
    sd.pop("middle_block.1.qkv.bias")
    torch.save({"state_dict": sd}, tmp_path / "bad.pt")
    assert script.main([str(tmp_path / "ok.pt"), "--model", "adm_small"]) == 0
    out = capsys.readouterr().out
    assert "1,371,974 parameters" in out and "loads strictly" in out
    assert script.main([str(tmp_path / "bad.pt"), "--model", "adm_small"]) == 1
    out = capsys.readouterr().out
    assert "missing: 1" in out and "middle_block.1.qkv.bias" in out and "NOT" in out
    assert script.main([str(tmp_path / "nope.pt")]) == 1
    assert "does not exist" in capsys.readouterr().out
