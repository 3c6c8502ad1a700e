"""Training with Lightning: the score network by denoising score matching."""
from vsdr.training.score_module import RandomBatches, ScoreMatchingModule

__all__ = ["ScoreMatchingModule", "RandomBatches"]
