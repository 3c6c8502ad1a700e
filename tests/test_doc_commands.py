"""Every command quoted in README.md and docs/ still runs as written: each ``run.py``
command (code blocks and inline code, ``make run ARGS=…`` too) composes, without running, as
``run.py … --cfg job`` would (a multirun: every job of the sweep), each ``python scripts/X.py``
names a script that exists and whose parser accepts the quoted arguments, and each ``make``
target exists. A renamed key, group option or flag, or a removed script, fails here with the
file, line and command. Placeholders (PATH, DIR, K, …) stand for temporary paths and values."""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CONF, ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: what path placeholders become (nothing is created there: composing and parsing touch no file)
TMP = "/tmp/vsdr-doc-commands"
#: path placeholders (whole words in a command) -> a temporary path
PATHS = ("PATH", "FOLDER", "DIR", "TRAIN", "CACHE", "EMPTY", "OUT", "RESULTS", "SWEEP")
#: value placeholders (a whole value, or a whole item of a list or dict) -> a value
VALUES = {"K": "10", "S": "1", "N": "2", "B": "64", "W": "1.0", "Z": "0.1", "SP": "quad",
          "SPACING": "quad", "D": "moons", "PRESET": "slurm", "i": "0", "n": "2"}
#: at most this many values of one sweep parameter are composed (first ones and the last)
SWEEP_VALUES = 4
#: what a command starts with: env settings, a timer, then the program
START = re.compile(r"^(?:[A-Z_]+=\S*\s+)*(?:/usr/bin/time(?: -v)?\s+)?"
                   r"(?P<cmd>(?:python3? )?(?:run\.py|scripts/\w+\.py)\b.*|make [\w-]+.*)$", re.S)


@dataclass
class Command:
    where: str   # FILE:LINE
    text: str    # as quoted, continuation lines joined

    def __str__(self) -> str:
        return f"{self.where}: `{self.text}`"


def _code_lines(lines: list[str]) -> list[tuple[int, str]]:
    """Commands of the code blocks (indented four spaces, or fenced): (line number, text) with
    ``\\`` continuations joined and ``# comments`` dropped."""
    found, fenced, k = [], False, 0
    while k < len(lines):
        line = lines[k]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            start, text = k, line.strip()
            while text.endswith("\\") and k + 1 < len(lines):
                k += 1
                text = text[:-1].rstrip() + " " + lines[k].strip()
            found.append((start + 1, re.sub(r"\s+#\s.*$", "", text)))
        k += 1
    return found


def _shell_vars(lines: list[str]) -> dict[str, str]:
    """``NAME="…"`` settings in the code blocks of a document (e.g. FFHQ.md's ``$FFHQ``)."""
    env = {"PWD": TMP}
    for _, text in _code_lines(lines):
        m = re.fullmatch(r'([A-Z_]+)="([^"]*)"', text)
        if m:
            env[m[1]] = m[2]
    return env


def doc_commands(path: Path) -> list[Command]:
    """The commands quoted in ``path``: code-block lines and inline code (which may span
    lines) that start a ``run.py``, ``scripts/X.py`` or ``make`` command."""
    text = path.read_text()
    lines = text.splitlines()
    name = path.relative_to(ROOT)
    found = _code_lines(lines)
    code = {n for n, _ in found}
    for m in re.finditer(r"`([^`\n]+(?:\n[^`\n]+){0,2})`", text):
        line = text.count("\n", 0, m.start()) + 1
        if line not in code:
            found.append((line, " ".join(m[1].split())))
    return [Command(f"{name}:{n}", START.match(t)["cmd"]) for n, t in sorted(found) if START.match(t)]


def expand(cmd: Command, env: dict[str, str]) -> list[str]:
    """``cmd`` as arguments: shell variables expanded, optional ``[--flag]`` taken, elisions
    (``…``, ``[what]``) dropped, placeholders replaced."""
    text = re.sub(r"\$(\w+)", lambda m: env.get(m[1], m[0]), cmd.text)
    text = re.sub(r"\[[^\]=,]* [^\]=,]*\]", " ", text)       # [tiny blobs job]
    text = re.sub(r"(--[\w-]+) …", r"\1 1", text)                # a flag's value elided: --zeta …
    text = re.sub(r"\b(" + "|".join(PATHS) + r")\b(?!=)", TMP, text)
    args = [a for a in shlex.split(text) if a not in ("…", "...", "[NAME…]")]
    args = [a[1:-1] if re.match(r"\[(-|[\w./@+~]+=)", a) and a.endswith("]") else a
            for a in args]                                          # optional: [--reuse], [key=value]
    return [re.sub(r"(?<=[=\[,:{])(\w+)(?=$|[\],}])", lambda m: VALUES.get(m[1], m[1]), a) for a in args]


def compose_job(overrides: list[str], multirun: bool = False) -> None:
    """Compose ``overrides`` (with ``multirun``, every job of the sweep) with the Hydra config,
    and resolve the job's config: what ``run.py OVERRIDES --cfg job`` checks before printing it."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = [o.input_line for o in parsed if o.is_sweep_override()]
    assert multirun or not swept, f"{swept} sweep(s) without -m: Hydra refuses them"
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeps = {o.get_key_element(): list(o.sweep_string_iterator()) for o in parsed if o.is_sweep_override()}
    first = {k: f"{k}={v[0]}" for k, v in sweeps.items()}
    jobs = [[*fixed, *first.values()]]
    for key, values in sweeps.items():  # each value once, the other sweeps at their first value
        others = [o for k, o in first.items() if k != key]
        values = values[:SWEEP_VALUES - 1] + values[-1:] if len(values) > SWEEP_VALUES else values
        jobs += [[*fixed, *others, f"{key}={v}"] for v in values[1:]]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for job in jobs:
            cfg = compose("config", overrides=list(job), return_hydra_config=True)
            OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                                   resolve=True)


def check_run_py(args: list[str]) -> None:
    """``run.py ARGS``: Hydra's flags set aside, the overrides compose (``-m``: every job)."""
    overrides, k = [], 0
    while k < len(args):
        a = args[k]
        if a in ("--cfg", "-c", "--package", "-p", "--info", "-i", "--config-name", "-cn"):
            k += 2 if a not in ("--info", "-i") else 1
            continue
        if not a.startswith("-"):
            overrides.append(a)
        k += 1
    compose_job(overrides, multirun="-m" in args or "--multirun" in args)


class Parsed(Exception):
    """Raised by the patched ``parse_args``: the script's arguments parsed, nothing run."""

    def __init__(self, ns: argparse.Namespace):
        super().__init__()
        self.ns = ns


def check_script(script: str, args: list[str], monkeypatch) -> None:
    """``python scripts/X.py ARGS``: the script exists, its parser takes ARGS (it is run up to
    its ``parse_args`` and stopped there); quoted overrides compose, figure names exist."""
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    assert "ArgumentParser(" in path.read_text(), f"{script} has no argparse parser to check its arguments"
    parse, init = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.__init__

    def parse_and_stop(self, argv=None, namespace=None):
        raise Parsed(parse(self, argv, namespace))

    def exact_flags(self, *args, **kwargs):  # a flag quoted in full: --onl is not --only
        init(self, *args, **{**kwargs, "allow_abbrev": False})

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(argparse.ArgumentParser, "__init__", exact_flags)
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            runpy.run_path(str(path), run_name="__main__")
    except Parsed as got:
        ns = got.ns
    except SystemExit:
        said = (err.getvalue().strip().splitlines() or ["no message"])[-1]
        raise AssertionError(f"{script} refuses the arguments: {said}") from None
    else:
        raise AssertionError(f"{script} ran to its end without parsing arguments")
    if getattr(ns, "overrides", None):
        compose_job(["sampler=ours", *ns.overrides])
    if path.name == "make_figures.py":
        from vsdr.experiments.figures import FIGURES

        assert set(ns.names) <= set(FIGURES), f"unknown figure(s) {set(ns.names) - set(FIGURES)}"


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def check(cmd: Command, env: dict[str, str], monkeypatch) -> None:
    args = expand(cmd, env)
    if args[0] in ("python", "python3"):
        args = args[1:]
    if args[0] == "make":
        target, rest = args[1], args[2:]
        assert target in make_targets(), f"no target {target} in the Makefile"
        given = dict(a.split("=", 1) for a in rest if "=" in a)
        names = [a for a in rest if "=" not in a]
        if target == "run":
            check_run_py(shlex.split(given.get("ARGS", "")))
        elif target == "figures":
            check_script("scripts/make_figures.py", names, monkeypatch)
        elif target == "figures-ffhq" and "RESULTS" in given:
            check_script("scripts/figures_ffhq.py", [given["RESULTS"]], monkeypatch)
    elif args[0] == "run.py":
        check_run_py(args[1:])
    elif cmd.text.startswith("python") or len(args) > 1:
        check_script(args[0], args[1:], monkeypatch)
    else:                                   # a script named, not run
        assert (ROOT / args[0]).is_file(), f"{args[0]} does not exist"


ALL = [(c, env) for p, env in [(p, _shell_vars(p.read_text().splitlines())) for p in DOCS]
       for c in doc_commands(p)]


def test_the_docs_quote_commands_of_every_kind():
    """The extraction finds what the docs hold (a broken pattern would check nothing)."""
    texts = [c.text for c, _ in ALL]
    assert len(ALL) >= 60
    assert "python run.py sampler=pscgan" in texts                                  # README code
    assert any(t.startswith("make run ARGS=") for t in texts)                       # inline make
    assert any(t.startswith("python run.py -m hydra/launcher=slurm")
               and t.endswith("outputs/multirun/ffhq_table4") for t in texts)    # continuation lines
    assert any(t.startswith("python scripts/gpu_check.py --image-size") for t in texts)
    assert any(c.where.startswith("docs/FFHQ.md") and "$FFHQ" in c.text for c, _ in ALL)


@pytest.mark.parametrize("cmd,env", ALL, ids=[c.where for c, _ in ALL])
def test_doc_command_composes(cmd, env, monkeypatch):
    try:
        check(cmd, env, monkeypatch)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure is the command's
        pytest.fail(f"{cmd}\n  fails: {type(e).__name__}: {e}", pytrace=False)
