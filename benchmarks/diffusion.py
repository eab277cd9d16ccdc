"""Diffusion-decay on grids, side by side with py-pde 0.59, at matched accuracy.

The problem has a closed form: on the unit square (cube) with zero-flux boundaries,

    dc/dt = D lap c - k c,   c(x, 0) = 1 + cos(pi x) cos(2 pi y) [cos(pi z)],
    c(x, t) = exp(-k t) (1 + cos(pi x) cos(2 pi y) [cos(pi z)] exp(-D pi^2 m t)),  m = 5 [6],

and both tools discretise it identically (cell-centred second-order stencils; the errors of the
same scheme agree to many digits, which the script checks), so a difference in accuracy comes
only from the time stepping.  Every error is max |c - c_exact| at t_end over the cell centres.

Parts (``--part 256|stiff|3d``; all by default):

1. **256** -- 256^2 cells, D = 0.002, k = 0.1, to t = 10 (the configuration of the reference
   figure in DESIGN.md: py-pde explicit Euler, dt = 1e-3).
   * py-pde: ``PDE({"c": "D*laplace(c) - k*c"}, bc={"derivative": 0}).solve(..., solver=
     "euler", dt=1e-3)``, single-threaded (``multithreading="never"``, its faster setting on
     this machine, see PDE_THREADING); *stepping only* is py-pde's own profiler entry
     ``solver`` (its stepping loop, without the compilation it reports separately).
   * scalebridge, the same scheme and dt (``explicit``): the error must equal py-pde's.
   * scalebridge at matched accuracy: ``adi`` (Douglas, second order, O(N) tridiagonal sweeps)
     and ``crank-nicolson`` (sparse LU, factorised once), each with the largest dt from a ladder
     whose error does not exceed py-pde's.
   *Stepping only*: scalebridge's stepper alone (``advance`` over all steps, including the
   factorisation), median of repeats interleaved with py-pde's solve calls.
   *First call*: a fresh interpreter imports the tool, builds the problem and solves once --
   py-pde compiles its stepper with numba at that call; scalebridge loads its kernels from the
   on-disk cache (also shown: with an empty cache, as on the first use after installing).
2. **stiff** -- 256^2, D = 1, k = 1, to t = 0.1, initial mode cos(pi x) cos(pi y): the explicit
   step is limited to h^2/(4D) by stability, far below what accuracy needs.  scalebridge
   ``explicit`` at 0.9 of its limit against ``adi`` and ``crank-nicolson`` at the largest dt
   whose error is within 2 % of the explicit error (equal accuracy).
3. **3d** -- 128^3 cells, D = 0.002, k = 0.1, to t = 2: py-pde explicit Euler at dt = 4e-3
   beside scalebridge ``explicit`` at the same dt and ``adi`` at matched accuracy.

Options: ``--quick`` (fewer repeats, 3-D to t = 0.4, no cold-cache child), ``--part``,
``--json FILE``.

Ends with one line per target:
``target <name>: measured <value> <unit>; goal <op> <value>; met|missed``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from _common import Target, environment, fmt, fresh_process, save_json, table
from scalebridge.space import (
    ADI,
    CrankNicolson,
    ExplicitEuler,
    Grid,
    ReactionDiffusion,
    SpaceMethod,
    discretize,
    solve,
)

PACKAGES = ("scalebridge", "py-pde", "numba", "numpy", "scipy")
# py-pde's default ("only_local") runs its stencils on numba threads from 256^2 points up; on
# this shared 2-core machine that was 20x slower (3.5 s against 0.155 s for 2000 steps), so
# py-pde runs single-threaded, like scalebridge: its faster configuration here.
PDE_THREADING = "never"


def log(msg: str = "") -> None:
    print(msg, flush=True)


# =============================================================================================
# Problem


MODES = {2: (1, 2), 3: (1, 2, 1)}


def exact(
    grid: Grid, t: float, D: float, k: float, modes: Sequence[int] | None = None
) -> np.ndarray:
    """exp(-k t) (1 + prod_i cos(m_i pi x_i) exp(-D pi^2 sum_i m_i^2 t))."""
    ms = MODES[grid.ndim] if modes is None else tuple(modes)
    mode = np.ones(grid.shape)
    for m, x in zip(ms, grid.centres(), strict=True):
        mode = mode * np.cos(m * np.pi * x)
    lam = D * np.pi**2 * sum(m * m for m in ms)
    return np.exp(-k * t) * (1.0 + mode * np.exp(-lam * t))


def sb_model(
    n: int, d: int, D: float, k: float, modes: Sequence[int] | None = None
) -> ReactionDiffusion:
    ms = MODES[d] if modes is None else tuple(modes)
    return ReactionDiffusion(
        Grid.box((1.0,) * d, (n,) * d),
        {"c": D},
        reactions={"c": "-k*c"},
        parameters={"k": k},
        id="modes-" + "-".join(map(str, ms)),
    )


def _modes(model: ReactionDiffusion) -> tuple[int, ...]:
    return tuple(int(m) for m in model.id.split("-")[1:])


def sb_run(model: ReactionDiffusion, method: SpaceMethod, t_end: float) -> tuple[np.ndarray, float]:
    """Final field and the wall time of the stepping alone (fresh stepper, all steps)."""
    disc = discretize(model)
    D = float(model.diffusivities[0])  # type: ignore[arg-type]
    k = float(model.parameter_values["k"])  # type: ignore[arg-type]
    u = disc.initial_state({"c": exact(model.grid, 0.0, D, k, _modes(model))})
    assert method.dt is not None
    n = max(1, math.ceil(t_end / method.dt * (1 - 1e-12)))
    h = t_end / n
    stepper = method.stepper(disc)
    stepper.check(u, 0.0, h)
    t0 = time.perf_counter()
    u = stepper.advance(u, 0.0, h, n)
    wall = time.perf_counter() - t0
    return disc.to_grid(u)[0].copy(), wall


def error(model: ReactionDiffusion, field: np.ndarray, t_end: float) -> float:
    D = float(model.diffusivities[0])  # type: ignore[arg-type]
    k = float(model.parameter_values["k"])  # type: ignore[arg-type]
    return float(np.max(np.abs(field - exact(model.grid, t_end, D, k, _modes(model)))))


def pp_solve(
    n: int, d: int, D: float, k: float, t_end: float, dt: float
) -> tuple[np.ndarray, float, float]:
    """py-pde explicit Euler: final field, its stepping time (profiler) and the call's wall."""
    import pde

    pde.config["backend.numba.multithreading"] = PDE_THREADING
    grid = pde.CartesianGrid([[0.0, 1.0]] * d, [n] * d)
    g = Grid.box((1.0,) * d, (n,) * d)
    state = pde.ScalarField(grid, data=exact(g, 0.0, D, k))
    eq = pde.PDE({"c": f"{D!r}*laplace(c) - {k!r}*c"}, bc={"derivative": 0})
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, info = eq.solve(state, t_range=t_end, dt=dt, solver="euler", tracker=None,
                             ret_info=True)  # fmt: skip
    wall = time.perf_counter() - t0
    return np.asarray(res.data), float(info["controller"]["profiler"]["solver"]), wall


def ladder_match(
    model: ReactionDiffusion,
    make: Callable[[float], SpaceMethod],
    t_end: float,
    goal: float,
    dts: Sequence[float],
) -> tuple[float, float]:
    """The largest dt of ``dts`` (descending) whose error is <= goal, and that error."""
    for dt in dts:
        field, _ = sb_run(model, make(dt), t_end)
        e = error(model, field, t_end)
        if e <= goal:
            return dt, e
    raise RuntimeError(f"no dt in the ladder reaches error {goal:.3g}")


def interleaved(fns: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median over ``rounds`` of each function's returned time, called in turn each round."""
    vals: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            vals[k].append(f())
    return {k: statistics.median(v) for k, v in vals.items()}


# =============================================================================================
# First call in a fresh interpreter

_PP_BODY = """
import sys, warnings
import numpy as np
import pde
pde.config["backend.numba.multithreading"] = sys.argv[2]
lap("import")
n, D, k, T, dt = int(sys.argv[1]), 0.002, 0.1, 10.0, 1e-3
grid = pde.CartesianGrid([[0.0, 1.0]] * 2, [n] * 2)
x, y = grid.cell_coords[..., 0], grid.cell_coords[..., 1]
state = pde.ScalarField(grid, data=1 + np.cos(np.pi * x) * np.cos(2 * np.pi * y))
eq = pde.PDE({"c": f"{D!r}*laplace(c) - {k!r}*c"}, bc={"derivative": 0})
lap("setup")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    res = eq.solve(state, t_range=T, dt=dt, solver="euler", tracker=None)
lap("solve")
report()
"""

_SB_BODY = """
import sys
import numpy as np
from scalebridge.space import ADI, Grid, ReactionDiffusion, solve
lap("import")
n, D, k, T, dt = int(sys.argv[1]), 0.002, 0.1, 10.0, float(sys.argv[2])
g = Grid.box((1.0, 1.0), (n, n))
model = ReactionDiffusion(g, {"c": D}, reactions={"c": "-k*c"}, parameters={"k": k})
x, y = g.centres()
lap("setup")
res = solve(model, ADI(dt=dt), t_end=T, n_points=2,
            initial={"c": 1 + np.cos(np.pi * x) * np.cos(2 * np.pi * y)})
lap("solve")
report()
"""


def first_calls(n: int, adi_dt: float, cold: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["py-pde"] = fresh_process(_PP_BODY, [str(n), PDE_THREADING]).as_dict()
    out["scalebridge"] = fresh_process(_SB_BODY, [str(n), repr(adi_dt)]).as_dict()
    if cold:
        with tempfile.TemporaryDirectory() as tmp:
            out["scalebridge-cold"] = fresh_process(
                _SB_BODY, [str(n), repr(adi_dt)], env={"NUMBA_CACHE_DIR": tmp}
            ).as_dict()
    return out


# =============================================================================================
# Parts


def part_256(args: argparse.Namespace, report: dict[str, Any]) -> list[Target]:
    n, D, k, T, dt = 256, 0.002, 0.1, 10.0, 1e-3
    log(f"== 256^2 diffusion-decay, D={D}, k={k}, to t={T}; py-pde explicit Euler dt={dt}")
    model = sb_model(n, 2, D, k)
    pp_field, _, _ = pp_solve(n, 2, D, k, T, dt)  # warm-up (compiles)
    e_pp = error(model, pp_field, T)
    sb_field, _ = sb_run(model, ExplicitEuler(dt=dt), T)
    e_sb = error(model, sb_field, T)
    same = float(np.max(np.abs(sb_field - pp_field)))
    log(f"  errors at t={T}: py-pde euler {e_pp:.6e}; scalebridge explicit {e_sb:.6e} "
        f"(max difference between the two fields {same:.1e})")  # fmt: skip
    adi_dt, e_adi = ladder_match(model, lambda h: ADI(dt=h), T, e_pp,
                                 [2.0, 1.0, 0.5, 0.25, 0.2, 0.1, 0.05])  # fmt: skip
    cn_dt, e_cn = ladder_match(model, lambda h: CrankNicolson(dt=h), T, e_pp,
                               [2.0, 1.0, 0.5, 0.25, 0.2, 0.1, 0.05])  # fmt: skip
    log(f"  matched accuracy (error <= py-pde's): adi dt={adi_dt} error {e_adi:.3e}; "
        f"crank-nicolson dt={cn_dt} error {e_cn:.3e}")  # fmt: skip
    rounds = 3 if args.quick else 5
    med = interleaved(
        {
            "py-pde euler": lambda: pp_solve(n, 2, D, k, T, dt)[1],
            "scalebridge explicit": lambda: sb_run(model, ExplicitEuler(dt=dt), T)[1],
            "scalebridge adi": lambda: sb_run(model, ADI(dt=adi_dt), T)[1],
            "scalebridge crank-nicolson": lambda: sb_run(model, CrankNicolson(dt=cn_dt), T)[1],
        },
        rounds,
    )
    rows = [
        ("py-pde euler", dt, round(T / dt), f"{e_pp:.3e}", fmt(med["py-pde euler"]), "1.00"),
        ("scalebridge explicit", dt, round(T / dt), f"{e_sb:.3e}",
         fmt(med["scalebridge explicit"]),
         f"{med['py-pde euler'] / med['scalebridge explicit']:.2f}"),
        ("scalebridge adi", adi_dt, round(T / adi_dt), f"{e_adi:.3e}",
         fmt(med["scalebridge adi"]), f"{med['py-pde euler'] / med['scalebridge adi']:.2f}"),
        ("scalebridge crank-nicolson", cn_dt, round(T / cn_dt), f"{e_cn:.3e}",
         fmt(med["scalebridge crank-nicolson"]),
         f"{med['py-pde euler'] / med['scalebridge crank-nicolson']:.2f}"),
    ]  # fmt: skip
    log("  stepping only (median of interleaved repeats):")
    log(
        table(["tool, method", "dt", "steps", "error", "time (s)", "py-pde / this"], rows, indent=4)
    )
    fc = first_calls(n, adi_dt, cold=not args.quick)
    pp_first = fc["py-pde"]["total_s"]
    sb_first = fc["scalebridge"]["total_s"]
    frows = []
    for name, r in fc.items():
        ph = r["phases_s"]
        frows.append((name, fmt(ph["start"]), fmt(ph["import"]), fmt(ph["setup"]),
                      fmt(ph["solve"]), fmt(r["total_s"])))  # fmt: skip
    log(
        "  first call in a fresh interpreter (s; scalebridge adi at its matched dt; "
        "'cold': empty kernel cache):"
    )
    log(table(["tool", "start", "import", "setup", "solve", "total"], frows, indent=4))
    report["256"] = {
        "errors": {
            "py-pde": e_pp,
            "explicit": e_sb,
            "adi": e_adi,
            "crank-nicolson": e_cn,
            "field_difference": same,
        },
        "dt": {"py-pde": dt, "explicit": dt, "adi": adi_dt, "crank-nicolson": cn_dt},
        "stepping_s": med,
        "first_call": fc,
    }
    best = min(med["scalebridge adi"], med["scalebridge crank-nicolson"])
    return [
        Target("diffusion-256-stepping-matched-accuracy-vs-py-pde",
               med["py-pde euler"] / best, "x", ">=", 1.0),
        Target("diffusion-256-first-call-vs-py-pde", pp_first / sb_first, "x", ">=", 1.0),
        Target("diffusion-256-stepping-same-scheme-vs-py-pde",
               med["py-pde euler"] / med["scalebridge explicit"], "x", ">=", 1.0),
    ]  # fmt: skip


def part_stiff(args: argparse.Namespace, report: dict[str, Any]) -> list[Target]:
    n, D, k, T = 256, 1.0, 1.0, 0.1
    model = sb_model(n, 2, D, k, modes=(1, 1))
    disc = discretize(model)
    lim = (1.0 / n) ** 2 / (4 * D)
    log(f"== stiff: 256^2, D={D}, k={k}, to t={T}; explicit limit h^2/(4D) = {lim:.3g}")
    ex = ExplicitEuler(dt=0.9 * lim)
    f_ex, _ = sb_run(model, ex, T)
    e_ex = error(model, f_ex, T)
    goal = 1.02 * e_ex
    dts = [
        0.02,
        0.014,
        0.01,
        0.007,
        0.005,
        0.0035,
        0.0025,
        0.0018,
        0.0013,
        0.001,
        7e-4,
        5e-4,
        3.5e-4,
        2.5e-4,
    ]
    adi_dt, e_adi = ladder_match(model, lambda h: ADI(dt=h), T, goal, dts)
    cn_dt, e_cn = ladder_match(model, lambda h: CrankNicolson(dt=h), T, goal, dts)
    rounds = 1 if args.quick else 3
    med = interleaved(
        {
            "explicit": lambda: sb_run(model, ex, T)[1],
            "adi": lambda: sb_run(model, ADI(dt=adi_dt), T)[1],
            "crank-nicolson": lambda: sb_run(model, CrankNicolson(dt=cn_dt), T)[1],
        },
        rounds,
    )
    rows = [
        ("explicit", f"{ex.dt:.3g}", math.ceil(T / ex.dt), f"{e_ex:.4e}", fmt(med["explicit"]),
         "1.00"),
        ("adi", adi_dt, round(T / adi_dt), f"{e_adi:.4e}", fmt(med["adi"]),
         f"{med['explicit'] / med['adi']:.1f}"),
        ("crank-nicolson", cn_dt, round(T / cn_dt), f"{e_cn:.4e}", fmt(med["crank-nicolson"]),
         f"{med['explicit'] / med['crank-nicolson']:.1f}"),
    ]  # fmt: skip
    log(f"  equal accuracy: error within 2 % of the explicit error ({e_ex:.4e}); stepping only")
    log(table(["scalebridge method", "dt", "steps", "error", "time (s)", "explicit / this"],
              rows, indent=4))  # fmt: skip
    report["stiff"] = {"errors": {"explicit": e_ex, "adi": e_adi, "crank-nicolson": e_cn},
                       "dt": {"explicit": ex.dt, "adi": adi_dt, "crank-nicolson": cn_dt},
                       "stepping_s": med, "unknowns": disc.op.n}  # fmt: skip
    best = min(med["adi"], med["crank-nicolson"])
    return [Target("diffusion-stiff-implicit-vs-explicit", med["explicit"] / best, "x", ">=", 10.0)]


def part_3d(args: argparse.Namespace, report: dict[str, Any]) -> list[Target]:
    n, D, k = 128, 0.002, 0.1
    T = 0.4 if args.quick else 2.0
    dt = 4e-3
    log(f"== 128^3 diffusion-decay, D={D}, k={k}, to t={T}; explicit Euler dt={dt}")
    model = sb_model(n, 3, D, k)
    pp_field, pp_step, pp_wall = pp_solve(n, 3, D, k, T, dt)
    e_pp = error(model, pp_field, T)
    f_ex, w_ex = sb_run(model, ExplicitEuler(dt=dt), T)
    e_ex = error(model, f_ex, T)
    adi_dt, e_adi = ladder_match(
        model, lambda h: ADI(dt=h), T, e_pp, [1.0, 0.5, 0.4, 0.2, 0.1, 0.05, 0.02]
    )
    _, w_adi = sb_run(model, ADI(dt=adi_dt), T)
    rows = [
        ("py-pde euler", dt, round(T / dt), f"{e_pp:.3e}", fmt(pp_step), fmt(pp_wall)),
        ("scalebridge explicit", dt, round(T / dt), f"{e_ex:.3e}", fmt(w_ex), ""),
        ("scalebridge adi", adi_dt, round(T / adi_dt), f"{e_adi:.3e}", fmt(w_adi), ""),
    ]
    log(table(["tool, method", "dt", "steps", "error", "stepping (s)", "first solve call (s)"],
              rows, indent=4))  # fmt: skip
    log(f"  py-pde / scalebridge stepping: same scheme {pp_step / w_ex:.2f}x, "
        f"matched accuracy (adi) {pp_step / w_adi:.2f}x")  # fmt: skip
    report["3d"] = {"errors": {"py-pde": e_pp, "explicit": e_ex, "adi": e_adi},
                    "dt": {"py-pde": dt, "explicit": dt, "adi": adi_dt},
                    "stepping_s": {"py-pde": pp_step, "explicit": w_ex, "adi": w_adi},
                    "py-pde_first_solve_wall_s": pp_wall}  # fmt: skip
    return []


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, shorter 3-D run")
    ap.add_argument("--part", choices=("256", "stiff", "3d"), action="append",
                    help="run only this part (may be repeated)")  # fmt: skip
    ap.add_argument("--json", metavar="FILE", help="write every figure and the targets as JSON")
    args = ap.parse_args(argv)
    parts = args.part or ["256", "stiff", "3d"]
    env = environment(PACKAGES)
    log(f"scalebridge diffusion benchmark ({'quick' if args.quick else 'full'}); "
        f"{env['platform']}, {env['cpus']} cpus; load {env['load_average']}")  # fmt: skip
    log("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    # warm the kernels (and their cache) outside the timings
    solve(sb_model(8, 2, 0.1, 0.1), ADI(dt=0.1), t_end=0.2, initial={"c": 1.0})
    report: dict[str, Any] = {"environment": env, "quick": args.quick}
    targets: list[Target] = []
    t0 = time.perf_counter()
    for part in ("256", "stiff", "3d"):
        if part in parts:
            t1 = time.perf_counter()
            targets += {"256": part_256, "stiff": part_stiff, "3d": part_3d}[part](args, report)
            log(f"  ({part}: {time.perf_counter() - t1:.0f} s)\n")
    report["wall_s"] = time.perf_counter() - t0
    log(f"total {report['wall_s']:.0f} s; load {list(os.getloadavg())}")
    for t in targets:
        log(t.line())
    report["targets"] = [t.as_dict() for t in targets]
    if args.json:
        save_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
