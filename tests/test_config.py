"""Every config in the tree composes, and the defaults are what the docs say."""
from __future__ import annotations

import pytest
from conftest import CONF, compose_cfg
from omegaconf import OmegaConf

from vsdr.experiments.validate import sampler_class

GROUPS = ["dataset", "operator", "noise", "sampler", "model", "score", "trainer", "logger", "tuned",
          "gan", "experiment", "guidance"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_resolves(group, option):
    # the gan group sits under sampler=pscgan
    overrides = ["sampler=pscgan", f"gan@sampler.gan={option}"] if group == "gan" else [f"{group}={option}"]
    cfg = compose_cfg(overrides)
    container = OmegaConf.to_container(cfg, resolve=True)
    if group not in ("experiment", "logger", "noise") and "_target_" in (container.get(group) or {}):
        assert container[group]["_target_"]
    if group == "dataset":
        assert cfg.dataset.name == option


@pytest.mark.parametrize("launcher", [p.stem for p in sorted((CONF / "hydra/launcher").glob("*.yaml"))])
def test_launchers_compose(launcher):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert "submitit" in cfg.hydra.launcher._target_.lower()


def test_defaults():
    cfg = compose_cfg()
    assert cfg.dataset.name == "pinwheel"
    assert cfg.operator.name == "identity"
    assert sampler_class(cfg.sampler).name == "ours"
    assert list(cfg.lam)[0] == 0.0 and list(cfg.lam)[-1] == 1.0
