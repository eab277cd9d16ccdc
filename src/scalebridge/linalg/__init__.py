"""Linear algebra kernels for the implicit integrators (compiled with numba, cached).

* :mod:`.dense` -- LU with partial pivoting for small systems.
* :mod:`.sparse` -- left-looking Gilbert-Peierls LU with threshold partial pivoting on a
  fill-reducing column order, and a numerical refactorization that reuses the pattern and
  pivot sequence.
"""

from __future__ import annotations

from .dense import DenseLU
from .sparse import LUFactors, SparseLU, column_order

__all__ = ["DenseLU", "LUFactors", "SparseLU", "column_order"]
