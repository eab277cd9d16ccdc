"""Reproducible ensembles of stochastic runs on the local cores or a Dask cluster.

:func:`run_ensemble` is what :func:`scalebridge.simulate` calls for ``ssa``, ``tau-leap`` and
``cle``; see :mod:`.core` for chunking and Ctrl-C, :mod:`.seeding` for the random streams,
:mod:`.local` and :mod:`.cluster` for the two ways of running chunks, :mod:`.progress` for the
progress bar.
"""

from __future__ import annotations

from .core import EnsembleInterrupted, run_ensemble
from .local import default_workers
from .seeding import root_seed, run_states

__all__ = ["EnsembleInterrupted", "default_workers", "root_seed", "run_ensemble", "run_states"]
