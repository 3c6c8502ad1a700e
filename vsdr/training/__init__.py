"""Training with Lightning: the score network by denoising score matching, PSCGAN.

``ScoreMatchingModule`` is imported on first use (PEP 562), so importing ``vsdr.training.ema``
or ``vsdr.training.batches`` does not load Lightning (about 3 s per job)."""
from vsdr.training.batches import RandomBatches


def __getattr__(name: str):
    if name == "ScoreMatchingModule":
        from vsdr.training.score_module import ScoreMatchingModule

        return ScoreMatchingModule
    raise AttributeError(f"module 'vsdr.training' has no attribute {name!r}")


__all__ = ["ScoreMatchingModule", "RandomBatches"]
