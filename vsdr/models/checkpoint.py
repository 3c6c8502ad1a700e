"""Reading checkpoints as data: every file a user or a cache hands vsdr (``model.ckpt=``,
``sampler.gan.ckpt=``, the network caches, the resume chunks) is read here with
``torch.load(weights_only=True)``, which builds tensors and plain containers and never runs
code from the file. A file that needs more (a pickle of arbitrary Python objects) is refused
with one sentence; a file the user trusts is converted once, on explicit request:

    python -m vsdr.models.checkpoint convert IN.pt OUT.pt --trust

which loads ``IN.pt`` with full unpickling (running whatever code it carries) and writes its
state dict (the tensors only) to ``OUT.pt``.
"""
from __future__ import annotations

import argparse
import pickle
import sys
import zipfile
from pathlib import Path

import torch

from vsdr.errors import ConfigError

#: the first bytes of a zip archive (``torch.save``'s format since torch 1.6)
ZIP_MAGIC = b"PK\x03\x04"
#: the first bytes of a legacy ``torch.save`` file: protocol 2, then torch's magic number
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


class CodeInCheckpoint(ConfigError):
    """A checkpoint that holds Python objects beyond tensors: loading it would run code."""


def label(what: str, path: str | Path) -> str:
    """How a message names the file: ``model.ckpt=PATH`` for a config key, ``the WHAT PATH``
    otherwise (``the cached checkpoint …``)."""
    return f"{what}={path}" if "." in what and " " not in what else f"the {what} {path}"


def torch_format(path: Path) -> str | None:
    """``"zip"`` or ``"legacy"`` from the file's first bytes, ``None`` for any other file."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_MAGIC))
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head == LEGACY_MAGIC:
        return "legacy"
    return None


def first_line(e: BaseException) -> str:
    """The first sentence of ``e``'s message (its type when empty), at most 200 characters."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return line.split(". ")[0].rstrip(".")[:200]


def refused(what: str, path: Path) -> CodeInCheckpoint:
    """The sentence for a file that ``weights_only`` refuses."""
    return CodeInCheckpoint(
        f"{label(what, path)} holds Python objects beyond tensors, and loading it would run code "
        f"from it, so it is refused: if you trust the file, convert it to a plain state dict with "
        f"`python -m vsdr.models.checkpoint convert {path} {path.with_suffix('')}-weights.pt --trust` "
        "and give that file instead")


def truncated(what: str, path: Path, e: BaseException) -> ConfigError:
    return ConfigError(f"{label(what, path)} is a truncated or damaged torch checkpoint "
                       f"({first_line(e)}): copy or write it again")


def read_checkpoint(path: str | Path, what: str = "model.ckpt"):
    """The payload of the torch checkpoint ``path``, read as data (``weights_only=True``).
    ``what`` names the file in messages. Raises ``ConfigError`` with one sentence for a missing
    file, a file that is not a torch checkpoint, a truncated one, and (``CodeInCheckpoint``) one
    that holds Python objects beyond tensors; nothing from the file is run."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{label(what, path)} does not exist: give the path of a saved checkpoint")
    kind = torch_format(path)
    if kind is None:
        raise ConfigError(f"{label(what, path)} is not a readable torch checkpoint (its first bytes "
                          "are neither a zip archive's nor a legacy torch file's): give the path of "
                          "a file written by torch.save")
    if kind == "zip":
        if not zipfile.is_zipfile(path):
            raise truncated(what, path, EOFError("the zip archive has no central directory"))
        with zipfile.ZipFile(path) as z:
            if not any(n.endswith("/data.pkl") for n in z.namelist()):
                raise ConfigError(f"{label(what, path)} is not a readable torch checkpoint (a zip "
                                  "archive without torch's data.pkl): give the path of a file "
                                  "written by torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "truncated" in str(e):
            raise truncated(what, path, e) from e
        raise refused(what, path) from e
    except Exception as e:  # noqa: BLE001 - anything else: a damaged archive or stream
        raise truncated(what, path, e) from e


def state_dict_of(payload) -> dict | None:
    """The state dict in a checkpoint payload: the payload itself (a plain state dict, e.g.
    guided-diffusion's), its ``state_dict`` entry (vsdr's old caches, Lightning's ``.ckpt``),
    or a module's; ``None`` when there is none."""
    if isinstance(payload, torch.nn.Module):
        return payload.state_dict()
    if isinstance(payload, dict):
        inner = payload.get("state_dict", payload)
        return inner if isinstance(inner, dict) else None
    return None


def bare_class(name: str) -> type:
    """A class with nothing in it, standing in for a class a checkpoint names (e.g. a Lightning
    callback used as a dict key) that is not importable here or not wanted."""
    return type(name.rsplit(".", 1)[-1], (), {"__doc__": f"stand-in for {name}"})


class _StandInUnpickler(pickle.Unpickler):
    """For ``convert`` only: a global that cannot be imported (a library that is not installed,
    such as an old Lightning's callbacks) becomes a ``bare_class``."""

    def find_class(self, module: str, name: str):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return bare_class(f"{module}.{name}")


def convert(src: str | Path, dst: str | Path, *, trust: bool = False) -> int:
    """With ``trust=True``, load ``src`` with full unpickling (it may run code: only for a file
    the caller trusts; classes that cannot be imported read as stand-ins) and write its tensors
    as a plain state dict to ``dst``; return how many tensors. Without it nothing is loaded: a
    ``CodeInCheckpoint`` says why (the gate is here, so no caller unpickles by accident)."""
    import types

    from vsdr.experiments.writer import atomic_write

    if not trust:
        raise CodeInCheckpoint(f"converting loads {src} with full unpickling, which runs any code the "
                               "file carries: pass trust=True (--trust) only for a file you trust")
    shim = types.SimpleNamespace(Unpickler=_StandInUnpickler, load=pickle.load, __name__="pickle")
    # trusted past the gate above: full unpickling, unknown classes as stand-ins
    payload = torch.load(Path(src), map_location="cpu", weights_only=False, pickle_module=shim)
    state = state_dict_of(payload)
    if state is None:
        raise ConfigError(f"{src} holds no state dict (a {type(payload).__name__})")
    plain = {str(k): v.detach().cpu() for k, v in state.items() if isinstance(v, torch.Tensor)}
    atomic_write(dst, lambda p: torch.save(plain, p))
    read_checkpoint(dst, "converted checkpoint")  # it now loads as data
    return len(plain)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vsdr.models.checkpoint",
                                 description="Convert a trusted checkpoint to a plain state dict.")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="write IN's tensors as a plain state dict to OUT")
    c.add_argument("src", metavar="IN")
    c.add_argument("dst", metavar="OUT")
    c.add_argument("--trust", action="store_true",
                   help="load IN with full unpickling, which runs any code it carries")
    args = ap.parse_args(argv)
    if not args.trust:
        print(f"vsdr: converting loads {args.src} with full unpickling, which runs any code the "
              "file carries: add --trust if you trust where it came from", file=sys.stderr)
        return 2
    try:
        n = convert(args.src, args.dst, trust=True)
    except ConfigError as e:
        print(f"vsdr: {e}", file=sys.stderr)
        return 2
    print(f"wrote {n} tensors to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
