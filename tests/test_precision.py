"""``precision=`` and ``channels_last`` (vsdr/models/precision.py): the ε-network under
autocast, float32 around it. Checked on a random-weight ADM UNet (``adm_small`` at 32², its
zero-initialised output layers re-initialised) against the plain float32 call: bf16 is visibly
rounded (an 8-bit mantissa: relative error of order 2⁻⁸) but close, its output and the
gradients through x̂0 are float32, channels-last changes nothing beyond rounding."""
from __future__ import annotations

import copy

import pytest
import torch
from conftest import compose_cfg

from vsdr.errors import ConfigError
from vsdr.experiments.validate import validate_config
from vsdr.models import ADMUNet
from vsdr.models.precision import NetworkPrecision, apply_precision
from vsdr.models.random_init import unzero
from vsdr.models.score import NetworkPrior


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = ADMUNet(image_size=32, in_channels=3, num_channels=32, num_res_blocks=1, channel_mult=(1, 2),
                attention_resolutions=(16,), num_heads=4, use_scale_shift_norm=True,
                resblock_updown=True, learn_sigma=True)
    return unzero(n, seed=1).eval()


def _inputs():
    g = torch.Generator().manual_seed(2)
    return torch.randn(2, 3, 32, 32, generator=g), torch.tensor([10, 500])


def _rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def test_fp32_leaves_the_network_alone(net):
    prior = NetworkPrior(net, schedule=None)
    assert apply_precision(prior, "fp32", False).net is net


def test_bf16_is_rounded_but_close_and_float32(net):
    x, t = _inputs()
    fp32 = net(x, t)
    assert float(fp32.abs().max()) > 0.1                     # a network with real outputs
    assert torch.equal(NetworkPrecision(net, None)(x, t), fp32)
    bf16 = NetworkPrecision(net, torch.bfloat16)(x, t)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert 1e-4 < _rel(bf16, fp32) < 5e-2                   # bf16 has an 8-bit mantissa: ~2⁻⁸


def test_gradient_through_x0_flows_in_float32(net):
    x, t = _inputs()
    ab = 0.6

    def grad(f):
        xr = x.clone().requires_grad_(True)
        eps = f(xr, t)[:, :3]
        x0 = (xr - (1 - ab) ** 0.5 * eps) / ab ** 0.5          # Tweedie, docs/METHOD.md §1
        (x0 ** 2).sum().backward()
        return xr.grad

    g32, g16 = grad(net), grad(NetworkPrecision(net, torch.bfloat16))
    assert g16.dtype == torch.float32 and torch.isfinite(g16).all()
    assert 0 < _rel(g16, g32) < 5e-2


def test_channels_last_changes_nothing_but_rounding(net):
    x, t = _inputs()
    plain = net(x, t)
    wrapped = NetworkPrecision(copy.deepcopy(net), None, channels_last=True)
    conv = next(m for m in wrapped.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert _rel(wrapped(x, t), plain) < 1e-5


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match=r"precision='fp8' .*fp32.*bf16.*fp16"):
        validate_config(compose_cfg(["precision=fp8"]))
