"""Diagnostic for experiment=images_small: the energy E[x_t²] of ours's chain (learned
variance, no guidance) for λ = 0, 0.25, 1 against the forward marginal ᾱ E[x0²] + 1 − ᾱ
that the network was trained on. Needs the cached digits network (run the experiment first).

    python scripts/chain_energy.py
"""
import glob
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch
torch.set_num_threads(1)
from omegaconf import OmegaConf
from vsdr.models import ADMUNet, NetworkPrior
from vsdr.diffusion import VPSchedule, per_sample_seeds
from vsdr.samplers import VarianceScaledSampler
from vsdr.operators import Identity
from vsdr.data.images import ImageTrainSet
cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/model/adm_digits.yaml"))
for k in ("_target_","name","ckpt","preconditioning"): cfg.pop(k)
net = ADMUNet(**cfg); net.load_state_dict(torch.load(sorted(glob.glob(str(ROOT / "outputs/checkpoints/digits-adm_digits-*.pt")))[-1])["state_dict"]); net.eval().requires_grad_(False)
s = VPSchedule.linear(100, 1e-3, 0.2); prior = NetworkPrior(net, s)
x0 = ImageTrainSet(ROOT / "outputs/data/digits16/train", 16).sample(1500); m2 = float(x0.pow(2).mean())
lams = [0.0]*8 + [0.25]*8 + [1.0]*8
smp = VarianceScaledSampler(variance="learned", clip_x0=True, zeta={"lam":[0,1],"value":[0.0,0.0]}, progress=False)
rec = {}
def cb(i, x):
    if i in (90, 70, 50, 30, 10, 0):
        rec[i] = [float(x[k*8:(k+1)*8].pow(2).mean()) for k in range(3)]
y = torch.zeros(24, 3, 16, 16)
out = smp(prior, y, Identity(), 1.0, lams, per_sample_seeds(0, range(24)), s, callback=cb)
ab = s.alpha_bars
print("E[x0^2] data", round(m2,4))
for i in sorted(rec, reverse=True):
    exp = float(ab[i-1]) * m2 + 1 - float(ab[i-1]) if i > 0 else m2
    print(f"after step i={i}: E[x^2] lam=0 {rec[i][0]:.4f}  lam=.25 {rec[i][1]:.4f}  lam=1 {rec[i][2]:.4f}   forward marginal {exp:.4f}")
