"""Compile (or load from numba's cache) every kernel once: ``python -m scalebridge.codegen.warmup``.

The kernels are compiled once per installation and cached by numba next to their sources; the
Makefile runs this after installing, so that the first simulation a user runs does not pay the
compile time.  Prints the time taken.
"""

from __future__ import annotations

import time


def warmup() -> float:
    """Run a small model through every compiled path; return the seconds it took."""
    from ..api import from_antimony, simulate

    t0 = time.perf_counter()
    net = from_antimony(
        """
        model warm
          compartment c = 1
          species A = 10, B = 0
          J1: A -> B; k1 * A * piecewise(1, time < 0.5, 2)
          J2: B -> ; k2 * B
          k1 = 0.5; k2 = 0.1
          E1: at (B > 1): k2 = 0.2
        end
        """
    )
    for solver in ("dense", "sparse"):
        simulate(net, "ode", t_end=2.0, n_points=5, linear_solver=solver)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"scalebridge kernels ready in {warmup():.1f} s")
