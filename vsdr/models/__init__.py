"""Networks and the score interfaces the samplers consume."""
from vsdr.models.adm_unet import ADMUNet, build_adm
from vsdr.models.mlp2d import ScoreMLP
from vsdr.models.score import NetworkPrior, load_state_strict

__all__ = ["ADMUNet", "build_adm", "ScoreMLP", "NetworkPrior", "load_state_strict"]
