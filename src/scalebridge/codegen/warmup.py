"""Compile (or load from numba's cache) every kernel once: ``python -m scalebridge.codegen.warmup``.

The kernels are compiled once per installation and cached by numba next to their sources; the
Makefile runs this after installing, so that the first simulation a user runs does not pay the
compile time.  Prints the time taken.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model.network import ReactionNetwork


def warmup() -> float:
    """Run a small model through every compiled path; return the seconds it took."""
    from ..api import from_antimony, simulate
    from ..reduce.regimes import advise_regimes

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
    counts = from_antimony(
        """
        model warm_counts
          species A = 20, B = 0
          J1: A -> B; k1 * A
          J2: 2 B -> ; 0.5 * k2 * B * B
          J3: -> A; k3
          J4: B -> ; V * B / (K + B)
          k1 = 0.5; k2 = 0.1; k3 = 2; V = 1; K = 5
        end
        """
    )
    events = from_antimony(
        """
        model warm_events
          species A = 20, B = 0
          J1: A -> B; k1 * A
          J2: B -> ; k2 * B
          J3: -> A; k3
          k1 = 0.5; k2 = 0.1; k3 = 2
          E1: at (A < 15): k3 = 4
          E2: at (time > 1): k1 = 1
        end
        """
    )
    for variant in ("direct", "composition-rejection", "rssa"):
        simulate(counts, "ssa", t_end=2.0, n_points=5, runs=2, seed=1, workers=1, variant=variant)
        simulate(events, "ssa", t_end=2.0, n_points=5, runs=2, seed=1, workers=1,
                 variant=variant, vars=["A", "B", "k3"])  # fmt: skip
    for model in (counts, events):
        simulate(model, "tau-leap", t_end=2.0, n_points=5, runs=2, seed=1, workers=1)
    for scheme in ("euler-maruyama", "weak2"):
        simulate(counts, "cle", t_end=2.0, n_points=5, runs=2, seed=1, workers=1, scheme=scheme)
    simulate(counts, "fsp", t_end=2.0, n_points=5)
    for continuous in ("ode", "cle"):
        simulate(counts, "hybrid", t_end=2.0, n_points=5, runs=2, seed=1, workers=1,
                 continuous=continuous)  # fmt: skip
    advise_regimes(counts, 2.0, n_points=5, pilot_runs=2)
    _warm_space(counts)
    return time.perf_counter() - t0


def _warm_space(net: ReactionNetwork) -> None:
    """The grid kernels: stencils in 1-3 D, expression and network reactions, each stepper."""
    from ..space import Dirichlet, Grid, ReactionDiffusion, solve, steady_state

    for cells in ((8,), (6, 6), (4, 4, 4)):
        grid = Grid.box(tuple(1.0 for _ in cells), cells)
        model = ReactionDiffusion(
            grid, {"c": "0.1 + 0.01*x"}, reactions={"c": "-k*c/(1 + c)"}, parameters={"k": 1.0},
            boundary={"x-": Dirichlet(1.0)},
        )  # fmt: skip
        for method in ("explicit", "backward-euler", "crank-nicolson", "imex", "adi"):
            solve(model, method, dt=1e-3, t_end=2e-3, n_points=2, initial={"c": 0.5})
        steady_state(model)
    grid = Grid.box(1.0, 8)
    model = ReactionDiffusion(grid, {"A": 0.1, "B": 0.1}, network=net)
    solve(model, "crank-nicolson", dt=1e-3, t_end=2e-3, n_points=2)


if __name__ == "__main__":
    print(f"scalebridge kernels ready in {warmup():.1f} s")
