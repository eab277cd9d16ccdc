"""The hybrid partitioned simulator against scalebridge's exact SSA as copy numbers grow.

The model is the gene switch ``src/scalebridge/data/gene_switch.ant``: one promoter copy that
switches on and off (activation fed back by the protein), and a protein P made while the
promoter is on, at copy numbers set by the protein scale Omega = 1e2, 1e3, 1e4, 1e5 (the
on-state level is Omega).  From G_off = 1, P = 0 to t = 5 (five protein lifetimes), 11 output
points.  At every Omega both methods run the same number of runs on one thread, through the
method contract (``prepare`` + ``run_runs``, the kernels loaded before timing), in interleaved
rounds so that a change of load on the shared machine affects both alike:

* ``ssa`` (direct method): its ``events`` -- the reactions fired;
* ``hybrid`` (defaults: SSA below 100 copies, CLE to 1e4, ODE above; partition revised during
  the run): its discrete ``events`` and continuous ``steps``.

Printed per Omega: wall times, events, the speed-up (SSA wall time / hybrid wall time), the
partition the hybrid used (time fractions of P), and the accuracy -- so that speed is not bought
with accuracy -- as Kolmogorov-Smirnov distances of the protein distribution at t = 5:

* hybrid vs SSA (two samples) with its bound ``D_crit + delta_h``: ``D_crit =
  sqrt(ln(2/alpha)/2) sqrt((n+m)/(n m))`` is the asymptotic two-sample critical value at
  ``alpha = 1e-6`` (Kolmogorov's tail ``P(sqrt(nm/(n+m)) D > c) <= 2 exp(-2c^2)``, conservative
  for the SSA's integer counts), and ``delta_h = 0.01`` the allowance for the hybrid's own
  approximation error (CLE/ODE in place of discrete protein steps, stochastic Heun steps), which
  the next line measures;
* hybrid and SSA each against the exact distribution (FSP of the CME, where it is cheap:
  Omega <= 1e4), one sample, with ``sqrt(ln(2/alpha)/(2n))`` at ``alpha = 1e-6`` for reference.

Options: ``--quick`` (fewer runs), ``--runs N`` (runs per method at Omega <= 1e4; a fifth of
that at 1e5), ``--rounds N``, ``--json FILE``.  Ends with one line per target:
``target <name>: measured <value> <unit>; goal <op> <value>; met|missed``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

import scalebridge as sb
from _common import REPO, Target, environment, fmt, save_json, table
from scalebridge.problem import TimeCourse
from scalebridge.wellmixed.hybrid import Hybrid, partition_fractions
from scalebridge.wellmixed.propensity import stream_states
from scalebridge.wellmixed.ssa import SSA

PACKAGES = ("scalebridge", "numpy", "numba", "scipy")
MODEL = REPO / "src" / "scalebridge" / "data" / "gene_switch.ant"
OMEGAS = (1e2, 1e3, 1e4, 1e5)
T_END = 5.0
N_POINTS = 11
RUNS = {"full": 10_000, "quick": 2_000}
RUNS_1E5_FRACTION = 0.2  # the SSA at Omega = 1e5 fires ~3e5 reactions per run
FSP_MAX_OMEGA = 1e4
ALPHA = 1e-6
DELTA_H = 0.01
GOAL_SPEEDUP = 10.0  # at Omega = 1e4


def log(msg: str = "") -> None:
    print(msg, flush=True)


def ks_crit_two(n: int, m: int, alpha: float = ALPHA) -> float:
    return math.sqrt(math.log(2.0 / alpha) / 2.0) * math.sqrt((n + m) / (n * m))


def ks_crit_one(n: int, alpha: float = ALPHA) -> float:
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def ks_vs_lattice(sample: np.ndarray, k: np.ndarray, pmf: np.ndarray) -> float:
    """sup_x |F_n(x) - F(x)| for a real sample against the distribution ``pmf`` on the sorted
    integers ``k`` (both step functions: checked at, and just before, every jump of either)."""
    s = np.sort(np.asarray(sample, float))
    n = s.size
    cdf = np.cumsum(pmf)

    def F(x: np.ndarray, left: bool) -> np.ndarray:
        i = np.searchsorted(k, x, side="left" if left else "right")
        return np.where(i > 0, cdf[np.maximum(i - 1, 0)], 0.0)

    pts = np.concatenate([s, k.astype(float)])
    right = np.abs(np.searchsorted(s, pts, side="right") / n - F(pts, False))
    left = np.abs(np.searchsorted(s, pts, side="left") / n - F(pts, True))
    return float(max(right.max(), left.max()))


def run_size(omega: float, runs: int, rounds: int, seed: int) -> dict[str, Any]:
    net = sb.load(MODEL).with_values({"Omega": omega})
    problem = TimeCourse(net, np.linspace(0.0, T_END, N_POINTS))
    methods = {"ssa": SSA(), "hybrid": Hybrid()}
    prepared = {k: m.prepare(problem) for k, m in methods.items()}
    names = prepared["ssa"].names
    p_col = names.index("P")
    # warm-up: kernels loaded, model compiled
    for k, m in methods.items():
        m.run_runs(prepared[k], stream_states(np.random.SeedSequence(0).spawn(2)),
                   np.empty((2, N_POINTS, len(names))))  # fmt: skip
    states = {
        "ssa": stream_states(np.random.SeedSequence([seed, 1]).spawn(runs)),
        "hybrid": stream_states(np.random.SeedSequence([seed, 2]).spawn(runs)),
    }
    out = {k: np.empty((runs, N_POINTS, len(names))) for k in methods}
    wall = {k: 0.0 for k in methods}
    stats: dict[str, dict[str, float]] = {k: {} for k in methods}
    bounds = np.linspace(0, runs, rounds + 1).astype(int)
    for a, b in itertools.pairwise(bounds):
        for k, m in methods.items():
            t0 = time.perf_counter()
            st = m.run_runs(prepared[k], states[k][a:b], out[k][a:b])
            wall[k] += time.perf_counter() - t0
            for key, v in st.items():
                if isinstance(v, int | float):
                    stats[k][key] = stats[k].get(key, 0) + v
    p_ssa = out["ssa"][:, -1, p_col]
    p_hyb = out["hybrid"][:, -1, p_col]
    ks = float(ks_2samp(p_hyb, p_ssa).statistic)
    bound = ks_crit_two(runs, runs) + DELTA_H
    fsp: dict[str, float] | None = None
    if omega <= FSP_MAX_OMEGA:
        t0 = time.perf_counter()
        f = sb.simulate(net, "fsp", times=[0.0, T_END], tol=1e-8, joint=False)
        pmf = np.asarray(f.data["P-marginal"].isel(time=-1).values)
        k = np.asarray(f.data["P-count"].values)
        fsp = {
            "hybrid": ks_vs_lattice(p_hyb, k, pmf),
            "ssa": ks_vs_lattice(p_ssa, k, pmf),
            "crit": ks_crit_one(runs),
            "mean": float(f.data["P"].values[-1]),
            "wall_s": time.perf_counter() - t0,
        }
    fr = partition_fractions(stats["hybrid"])["P"]
    return {
        "omega": omega,
        "runs": runs,
        "wall_s": wall,
        "events": {"ssa": stats["ssa"]["events"], "hybrid": stats["hybrid"]["events"]},
        "hybrid_steps": stats["hybrid"]["steps"],
        "hybrid_partition_changes": stats["hybrid"]["partition_changes"],
        "P_fractions": fr,
        "speedup": wall["ssa"] / wall["hybrid"],
        "ks_hybrid_ssa": ks,
        "ks_bound": bound,
        "ks_crit": ks_crit_two(runs, runs),
        "mean_P": {"ssa": float(p_ssa.mean()), "hybrid": float(p_hyb.mean())},
        "fsp": fsp,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{RUNS['quick']} runs per method")
    ap.add_argument("--runs", type=int, default=None, help="runs per method at Omega <= 1e4")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds per size")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--json", metavar="FILE", help="write every figure and the targets as JSON")
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    runs = args.runs or RUNS[mode]
    env = environment(PACKAGES)
    log(f"scalebridge hybrid benchmark ({mode}); {env['platform']}, {env['cpus']} cpus")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    log(f"model: {MODEL.name}, t = 0..{T_END:g}, one thread; KS bound = D_crit(alpha = "
        f"{ALPHA:g}) + delta_h = {DELTA_H:g}")  # fmt: skip
    report: dict[str, Any] = {"environment": env, "quick": args.quick, "sizes": []}
    t_all = time.perf_counter()
    for omega in OMEGAS:
        n = runs if omega < 1e5 else max(200, int(runs * RUNS_1E5_FRACTION))
        r = run_size(omega, n, args.rounds, args.seed)
        report["sizes"].append(r)
        fr = r["P_fractions"]
        log(
            f"\nOmega = {omega:.0e}: {n} runs each; P continuous {100 * (1 - fr['SSA']):.0f}% "
            f"of the time (CLE {100 * fr['CLE']:.0f}%, ODE {100 * fr['ODE']:.0f}%), "
            f"{r['hybrid_partition_changes'] / n:.1f} partition changes per run"
        )
        rows = [
            ["ssa (direct)", fmt(r["wall_s"]["ssa"]), fmt(r["events"]["ssa"] / n), "-",
             fmt(r["events"]["ssa"] / r["wall_s"]["ssa"])],
            ["hybrid", fmt(r["wall_s"]["hybrid"]), fmt(r["events"]["hybrid"] / n),
             fmt(r["hybrid_steps"] / n), "-"],
        ]  # fmt: skip
        log(table(["method", "wall s", "events/run", "steps/run", "events/s"], rows))
        log(f"  speed-up (ssa / hybrid wall time): {r['speedup']:.1f}x")
        line = (
            f"  KS(hybrid, ssa) = {r['ks_hybrid_ssa']:.4f}  (bound {r['ks_bound']:.4f} = "
            f"D_crit {r['ks_crit']:.4f} + {DELTA_H:g}); mean P ssa {r['mean_P']['ssa']:.1f}, "
            f"hybrid {r['mean_P']['hybrid']:.1f}"
        )
        log(line)
        if r["fsp"] is not None:
            f = r["fsp"]
            log(
                f"  vs exact (FSP, mean P {f['mean']:.1f}): KS hybrid {f['hybrid']:.4f}, "
                f"ssa {f['ssa']:.4f} (one-sample D_crit {f['crit']:.4f})"
            )
    report["wall_s"] = time.perf_counter() - t_all
    log("\nsummary")
    rows = [
        [f"{r['omega']:.0e}", r["runs"], fmt(r["events"]["ssa"] / r["runs"]),
         fmt((r["events"]["hybrid"] + r["hybrid_steps"]) / r["runs"]), f"{r['speedup']:.1f}",
         f"{r['ks_hybrid_ssa']:.4f}", f"{r['ks_bound']:.4f}",
         "-" if r["fsp"] is None else f"{r['fsp']['hybrid']:.4f}"]
        for r in report["sizes"]
    ]  # fmt: skip
    log(table(["Omega", "runs", "ssa events/run", "hybrid events+steps/run", "speed-up",
               "KS hyb-ssa", "KS bound", "KS hyb-FSP"], rows))  # fmt: skip
    at = {r["omega"]: r for r in report["sizes"]}
    targets = [
        Target("hybrid speed-up over ssa at Omega=1e4", at[1e4]["speedup"], "x", ">=", GOAL_SPEEDUP)
    ]
    for om in OMEGAS:
        r = at[om]
        targets.append(
            Target(
                f"KS hybrid vs ssa at Omega={om:.0e}", r["ks_hybrid_ssa"], "KS", "<=", r["ks_bound"]
            )
        )
    log(f"\ntotal {report['wall_s']:.0f} s")
    for t in targets:
        log(t.line())
    report["targets"] = [t.as_dict() for t in targets]
    if args.json:
        save_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
