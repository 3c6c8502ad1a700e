"""Per-sample random streams: one seed per sample, so results do not depend on batch size,
on how λ values are batched, or on how a sweep is split into jobs."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

#: the independent random streams of a job, keyed with the job seed and an item index:
#: test points (or the analytic observation), measurement noise, sampler noise
STREAM_TEST, STREAM_MEASUREMENT, STREAM_SAMPLER = 1, 2, 3
#: the extra chains of an averaged sample (``sampler.average``), keyed with the sample's own seed
STREAM_AVERAGE = 10
#: the trace probes of ``sampler.step_rule=trace``, keyed with the sample's own seed
STREAM_PROBE = 11


def seed_of(key: Sequence[int]) -> int:
    """A 63-bit seed from the integers ``key`` (numpy's SeedSequence: independent streams for
    different keys)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(2, np.uint32)
               .astype(np.uint64).dot([1 << 31, 1]))


def per_sample_seeds(seed: int, indices: Sequence[int] | np.ndarray, stream: int = 0) -> list[int]:
    """Independent 63-bit seeds for items ``indices`` of job seed ``seed``
    (numpy's SeedSequence over ``(seed, stream, index)``)."""
    return [seed_of([seed, stream, j]) for j in indices]


def sample_seeds(seed: int, items: Sequence[int] | np.ndarray, samples_per_item: int = 1) -> list[int]:
    """Sampler seeds of the expanded items ``items`` (``k = j · S + s``: sample ``s`` of test
    item ``j``, ``S = samples_per_item``). Sample 0 keeps the seed of ``(seed, sampler
    stream, j)`` (so ``S = 1`` is exactly ``per_sample_seeds(seed, items, STREAM_SAMPLER)``);
    sample ``s ≥ 1`` draws from ``(seed, sampler stream, j, s)``. The measurement noise of
    ``j`` comes from another stream, so it is the same whatever ``S``."""
    S = int(samples_per_item)
    if S < 1:
        raise ValueError(f"samples_per_item={S} must be >= 1")
    out = []
    for k in items:
        j, s = divmod(int(k), S)
        key = [int(seed), STREAM_SAMPLER, j] + ([s] if s else [])
        out.append(seed_of(key))
    return out


def chain_seeds(seeds: Sequence[int], chains: int) -> list[int]:
    """The seeds of ``chains`` chains per sample, sample-major (``b · N + j``): chain 0 keeps the
    sample's seed (``N = 1`` changes nothing), chain ``j ≥ 1`` draws from
    ``(seed, STREAM_AVERAGE, j)``. They depend on the sample's seed only, not on the batch."""
    N = int(chains)
    if N < 1:
        raise ValueError(f"chains={N} must be >= 1")
    out = []
    for s in seeds:
        out.append(int(s))
        out += [seed_of([s, STREAM_AVERAGE, j]) for j in range(1, N)]
    return out


def probe_seeds(seeds: Sequence[int], space: int) -> list[int]:
    """Seeds of the Hutchinson probes of each sample (``(seed, STREAM_PROBE, space)``; ``space``
    0: the signal's, 1: the measurement's), independent of the chain's own noise and of the batch."""
    return [seed_of([s, STREAM_PROBE, space]) for s in seeds]


class PerSampleNoise:
    """The Gaussian draws of a reverse chain, one ``torch.Generator`` per sample.

    For sample ``b``: first ``x_T`` (shape ``shape``), then the step noises ``z`` for
    ``i = T−1, …, 1`` in that order, drawn in chunks of ``chunk`` steps. The chunk size
    depends only on ``shape`` (never on the batch), so sample ``b`` sees the same numbers in
    any batch. Samples that share a seed (a test point under several knob values) share
    one generator: its draws are computed once and copied to each of them, the numbers
    they would have drawn on their own.
    """

    #: floats drawn per sample per chunk at most (small data: the whole chain at once)
    CHUNK_FLOATS = 1 << 10

    def __init__(self, seeds: Sequence[int], shape: Sequence[int], num_steps: int,
                 dtype: torch.dtype = torch.float32):
        self.shape = tuple(int(s) for s in shape)
        self.num_steps = int(num_steps)
        self.dtype = dtype
        distinct = list(dict.fromkeys(int(s) for s in seeds))
        self.generators = [torch.Generator().manual_seed(s) for s in distinct]
        row = {s: k for k, s in enumerate(distinct)}
        index = [row[int(s)] for s in seeds]
        # None when every sample has its own seed: the draws are used as they are
        self._index = None if len(distinct) == len(index) else torch.tensor(index)
        numel = max(1, math.prod(self.shape))
        self.chunk = int(max(1, min(self.num_steps, self.CHUNK_FLOATS // numel)))
        self._buffer: Tensor | None = None
        self._pos = 0

    def _per_sample(self, draws: Tensor) -> Tensor:
        """Rows of the distinct seeds → rows of the samples."""
        return draws if self._index is None else draws.index_select(0, self._index)

    def initial(self) -> Tensor:
        """``x_T ~ N(0, I)``, shape ``(B, *shape)``."""
        return self._per_sample(torch.stack(
            [torch.randn(self.shape, generator=g, dtype=self.dtype) for g in self.generators]
        ))

    def next(self) -> Tensor:
        """The next step's ``z``, shape ``(B, *shape)``."""
        if self._buffer is None or self._pos == self._buffer.shape[1]:
            self._buffer = torch.stack(
                [torch.randn((self.chunk, *self.shape), generator=g, dtype=self.dtype)
                 for g in self.generators]
            )
            self._pos = 0
        z = self._per_sample(self._buffer[:, self._pos])
        self._pos += 1
        return z
