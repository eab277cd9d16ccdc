"""Random streams of an ensemble: one independent xoshiro256+ stream per run.

Run ``r`` of an ensemble with root seed ``s`` draws every random number from the stream seeded by
``numpy.random.SeedSequence(s).spawn(runs)[r]`` (through
:func:`scalebridge.wellmixed.propensity.stream_states`).  The ``r``-th child of a fresh
``SeedSequence(s)`` is ``SeedSequence(s, spawn_key=(r,))``, so the states of runs ``start ..
stop-1`` are computed without spawning the others: a chunk of runs needs nothing but the root seed
and its run indices, wherever it is executed.  Nothing is global and nothing is shared between
runs, so a result depends on the seed alone -- not on the number of workers, the chunk size or
the machine that ran a chunk.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import OptionError

__all__ = ["root_seed", "run_states"]


def root_seed(seed: int | None) -> int:
    """The root seed of an ensemble: ``seed`` itself, or fresh OS entropy when ``seed`` is None.

    Fresh entropy is ``numpy.random.SeedSequence().entropy`` (a 128-bit integer); recording it in
    the result's stats lets the ensemble be repeated exactly.  A seed must be a non-negative
    integer (:class:`~scalebridge.errors.OptionError` otherwise).
    """
    if seed is None:
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)
        return entropy
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise OptionError(f"seed must be a non-negative integer, got {seed!r}")
    if int(seed) < 0:
        raise OptionError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def run_states(seed: int, start: int, stop: int) -> np.ndarray:
    """xoshiro256+ states (``stop - start`` x 4 uint64) of runs ``start .. stop-1``.

    Row ``i`` is the state of run ``start + i``, seeded by
    ``SeedSequence(seed).spawn(runs)[start + i]`` for any ``runs >= stop``.
    """
    from ..wellmixed.propensity import stream_states

    children = [np.random.SeedSequence(seed, spawn_key=(r,)) for r in range(start, stop)]
    return stream_states(children)
