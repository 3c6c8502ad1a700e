"""Checks that run before any compute: each failure is one sentence naming the value and
what would fit."""
from __future__ import annotations

import math

from omegaconf import DictConfig, ListConfig

from vsdr.errors import ConfigError

KNOWN_DEVICES = ("cpu", "cuda", "auto")


def lam_values(lam) -> list[float]:
    """``lam`` as a list of floats (a number or a list in config)."""
    values = list(lam) if isinstance(lam, (list, tuple, ListConfig)) else [lam]
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise ConfigError(f"lam={v!r} is not a number: give λ in [0, 1] or a list of them") from None
    if not out:
        raise ConfigError("lam=[] is empty: give at least one λ in [0, 1]")
    return out


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` on the first impossible value."""
    for v in lam_values(cfg.lam):
        if not (0.0 <= v <= 1.0) or math.isnan(v):
            raise ConfigError(
                f"lam={v:g} is outside [0, 1]: λ scales the reverse-step variance, "
                "0 gives the MMSE estimate and 1 a posterior sample"
            )
    sigma = cfg.noise.sigma
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or math.isnan(sigma):
        raise ConfigError(f"noise.sigma={sigma!r} is not a number: give the noise std, e.g. 0.5")
    if sigma < 0:
        raise ConfigError(f"noise.sigma={sigma:g} is negative: the measurement noise std must be >= 0")
    if sigma == 0 and cfg.sampler.get("needs_positive_sigma", False):
        raise ConfigError(
            f"noise.sigma=0 does not fit sampler={cfg.sampler.name}: its likelihood term divides "
            "by σ², so give σ > 0"
        )
    if cfg.device not in KNOWN_DEVICES:
        raise ConfigError(f"device={cfg.device!r} is not one of {KNOWN_DEVICES}")
    if int(cfg.data.n_test) < 2:
        raise ConfigError(f"data.n_test={cfg.data.n_test} is too small: W2 needs at least 2 points")
    if int(cfg.diffusion.T) < 2:
        raise ConfigError(f"diffusion.T={cfg.diffusion.T} is too small: use at least 2 steps")
