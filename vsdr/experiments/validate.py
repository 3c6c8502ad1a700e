"""Checks that run before any compute: each failure is one sentence naming the value and
what would fit."""
from __future__ import annotations

import math

from omegaconf import DictConfig, ListConfig

from vsdr.errors import ConfigError

KNOWN_DEVICES = ("cpu", "cuda", "auto")

#: each sampler's knobs (``sampler.knob``), by ``sampler.name``
SAMPLER_KNOBS = {"ours": ("lam",), "interp": ("s",), "dps": ("zeta",),
                 "diffpir": ("lambda_d", "zeta_d"), "pscgan": ("N", "sigma_z")}
#: knob -> (low, high, whole numbers only, the allowed range in words, what the knob is)
KNOB_RANGES = {
    "s": (0.0, 1.0, False, "lie in [0, 1]", "the interpolation weight between ours at λ = 0 and at λ = 1"),
    "zeta": (0.0, math.inf, False, "be finite and >= 0", "DPS's step size ζ (0 is unconditional)"),
    "lambda_d": (0.0, math.inf, False, "be finite and >= 0", "DiffPIR's data weight λ_D"),
    "zeta_d": (0.0, 1.0, False, "lie in [0, 1]", "DiffPIR's mix of implied and fresh noise ζ_D"),
    "N": (1.0, math.inf, True, "be a whole number >= 1", "how many generator samples PSCGAN averages"),
    "sigma_z": (0.0, math.inf, False, "be finite and >= 0", "the scale σ_z of PSCGAN's injected noise"),
}


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


def _number(key: str, v, hint: str = "") -> float:
    """``v`` as a float, or a ``ConfigError`` naming ``key`` (and ``hint``: what would fit)."""
    x = math.nan
    if not isinstance(v, bool):
        try:
            x = float(v)
        except (TypeError, ValueError):
            pass
    if math.isnan(x):
        where = f"{key} has {v!r}, which" if key.endswith((".values", ".lam", ".value")) else f"{key}={v!r}"
        raise ConfigError(f"{where} is not a number{hint}")
    return x


def _check_knob_value(key: str, knob: str, v) -> None:
    """``v`` (from ``sampler.values`` or the fixed ``sampler.<knob>``) against ``KNOB_RANGES``."""
    lo, hi, whole, allowed, what = KNOB_RANGES[knob]
    x = _number(key, v, f": {knob} must {allowed}")
    if not lo <= x <= hi or math.isinf(x) or (whole and x != math.floor(x)):
        where = f"{key} has {knob}={x:g}" if key == "sampler.values" else f"{key}={x:g}"
        raise ConfigError(f"{where}, but {knob} must {allowed}: it is {what}")


def _check_zeta_table(node) -> None:
    """``sampler.zeta`` of ours / interp: lists ``lam`` (increasing) and ``value`` (ζ >= 0)."""
    lam, value = node.get("lam"), node.get("value")
    if not isinstance(lam, (list, ListConfig)) or not isinstance(value, (list, ListConfig)) \
            or len(lam) == 0 or len(lam) != len(value):
        raise ConfigError(f"sampler.zeta={node} needs lists lam and value of the same length, "
                          "e.g. {lam:[0,1],value:[0.2,0.2]}")
    lams = [_number("sampler.zeta.lam", v, ": give λ values in increasing order") for v in lam]
    if any(b <= a for a, b in zip(lams, lams[1:])):
        raise ConfigError(f"sampler.zeta.lam={lams} must increase: ζ(λ) is interpolated between them")
    for v in value:
        z = _number("sampler.zeta.value", v, ": ζ(λ) must be finite and >= 0")
        if not 0.0 <= z < math.inf:
            raise ConfigError(f"sampler.zeta.value has ζ={z:g}, but ζ(λ) must be finite and >= 0: "
                              "it weighs the likelihood term (0 is unconditional)")


def validate_sampler(sampler: DictConfig) -> None:
    """The knob values of ``sampler.values`` and the sampler's fixed knob settings (ζ(λ) table,
    DiffPIR's λ_D / ζ_D, PSCGAN's N / σ_z), each against its range (``KNOB_RANGES``)."""
    name, knob = sampler.get("name"), sampler.get("knob")
    knobs = SAMPLER_KNOBS.get(name)
    if knobs is not None and knob not in knobs:
        raise ConfigError(f"sampler.knob={knob} is not one of sampler={name}'s knobs {list(knobs)}")
    if sampler.get("zeta") is not None:
        _check_zeta_table(sampler.zeta)
    if knob in KNOB_RANGES:
        values = sampler.get("values")
        if not isinstance(values, (list, ListConfig)) or len(values) == 0:
            raise ConfigError(f"sampler.values={values} must be a non-empty list of {knob} values "
                              f"(each must {KNOB_RANGES[knob][3]})")
        for v in values:
            _check_knob_value("sampler.values", knob, v)
    for fixed in knobs or ():  # the knob not swept keeps its value in sampler.<knob>
        if fixed != knob and fixed in KNOB_RANGES and sampler.get(fixed) is not None:
            _check_knob_value(f"sampler.{fixed}", fixed, sampler.get(fixed))


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
    validate_sampler(cfg.sampler)
    if cfg.device not in KNOWN_DEVICES:
        raise ConfigError(f"device={cfg.device!r} is not one of {KNOWN_DEVICES}")
    if int(cfg.data.n_test) < 2:
        raise ConfigError(f"data.n_test={cfg.data.n_test} is too small: W2 needs at least 2 points")
    if int(cfg.diffusion.T) < 2:
        raise ConfigError(f"diffusion.T={cfg.diffusion.T} is too small: use at least 2 steps")
