"""ODE load-and-simulate benchmark: scalebridge against libRoadRunner, side by side, in one run.

Models: the six PEtab benchmark models in ``tests/data/petab-benchmark`` (simulated to the last
time of their measurement table, with the parameter values of the SBML file, no PEtab
conditions) and the three rule-based networks in ``tests/data/networks`` (multistate to t=1e5,
multisite2 to t=1e4, egfr_net to t=1e3).  Both tools use the same tolerances (rtol=1e-6,
atol=1e-12, absolute, on the species amounts that both integrate) and the same 101 equally
spaced output times, and report every species as SBML defines its symbol (concentration unless
hasOnlySubstanceUnits).

Measured per model:

1. simulate time, median of repeats after a warm-up call, the calls of both tools interleaved:
   scalebridge "solver alone" = ``cm.initial`` + ``integrate`` on an already compiled model
   (what a repeated simulation of a loaded model costs), and the whole ``sb.simulate`` call
   (adds the problem set-up and the labelled xarray result); libRoadRunner = ``resetAll()`` +
   ``simulate(times=...)`` (CVODE BDF).  The ratio is scalebridge / libRoadRunner.
2. load to the first finished simulation in a fresh process with warm caches: a child process
   imports, loads, simulates once and reports its phases (start = process launch to the first
   line of Python, import, load, first simulate); the total is measured from inside the process,
   and the subprocess's wall time (which adds interpreter shutdown) beside it.
3. the first ever load: scalebridge has no per-model compiled code (its kernels are compiled once
   per installation and cached by numba), so (a) a model never seen before is a copy of the file
   at a new path, in a fresh process; (b) a cold installation runs the same child with
   NUMBA_CACHE_DIR pointing at an empty directory, so that every kernel it needs compiles (the
   one-off cost that ``make`` pays by running ``python -m scalebridge.codegen.warmup``).
   libRoadRunner compiles the model with LLVM when it loads it; its model cache lives in memory
   only (a second load of the same SBML in one process is shown as "reload"), so every fresh
   process compiles again and its fresh-process figure is also its first-ever figure.
4. trajectories: the largest relative difference over species and output times,
   ``|a - b| / (max(|a|, |b|) + atol/rtol)``, the denominator guarded by atol/rtol = 1e-6 (the
   magnitude below which both error tests are absolute).  Local tolerances do not bound the
   global error, so the script also computes a converged reference (libRoadRunner at rtol=1e-10,
   atol=1e-16), each tool's global error against it at the benchmark tolerances, and the
   difference between the two tools' converged solutions.  The agreement targets are that the
   converged solutions differ by at most rtol (both tools solve the same equations) and that
   scalebridge's global error at the benchmark tolerances is within 3x of libRoadRunner's
   (errors below rtol counted as rtol).

Run ``make bench`` or ``.venv/bin/python benchmarks/ode_roadrunner.py [--quick] [--models a,b]
[--json FILE] [--cold-all]``.  The last lines are the targets, one per line, in the form
``target <name>: measured <value> <unit>; goal <op> <value>; met|missed``.
"""

from __future__ import annotations

import argparse
import csv
import math
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from _common import (
    REPO,
    FreshProcessError,
    FreshRun,
    Target,
    environment,
    fmt,
    fresh_process,
    save_json,
    table,
    time_interleaved,
)
from scalebridge.errors import ScalebridgeError

RTOL, ATOL = 1e-6, 1e-12
REF_RTOL, REF_ATOL = 1e-10, 1e-16
N_POINTS = 101
RR_MAX_STEPS = 1_000_000  # CVODE's mxstep: steps allowed between two output times
SMALL = 100  # species: the load-time goals apply to models below this size
SIM_RATIO_GOAL = 2.0
WARM_LOAD_GOAL_S = 1.0
FIRST_LOAD_GOAL_S = 5.0
ACCURACY_RATIO_GOAL = 3.0
COPASI_EGFR_MS = 4910.0

DATA = REPO / "tests" / "data"

# Published median wall times (ms) of one ODE run, single thread, from
# tests/data/networks/README.md (Catalyst paper, Loman et al. 2023; other hardware).
PUBLISHED_ODE_MS: dict[str, dict[str, float]] = {
    "multistate": {"Catalyst CVODE BDF": 0.6, "Catalyst lsoda": 1.7},
    "multisite2": {
        "Catalyst CVODE BDF+GMRES": 2.6,
        "Catalyst lsoda": 21.9,
        "COPASI": 32.9,
        "BioNetGen": 330.0,
        "GillesPy2 LSODA": 675.0,
    },
    "egfr_net": {
        "Catalyst CVODE BDF+GMRES": 32.0,
        "Catalyst lsoda": 799.0,
        "COPASI": COPASI_EGFR_MS,
        "BioNetGen": 5955.0,
    },
}
NETWORK_T_END = {"multistate": 1e5, "multisite2": 1e4, "egfr_net": 1e3}


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    t_end: float
    origin: str


def all_cases() -> list[Case]:
    out = []
    for d in sorted((DATA / "petab-benchmark").iterdir()):
        models = sorted(d.glob("model_*.xml")) if d.is_dir() else []
        if not models:
            continue
        t_end = max(_measurement_times(d))
        out.append(Case(d.name, models[0], t_end, "PEtab: last measurement time"))
    for name, t_end in NETWORK_T_END.items():
        out.append(Case(name, DATA / "networks" / f"{name}.xml", t_end, "as in the Catalyst paper"))
    return out


def _measurement_times(folder: Path) -> list[float]:
    times: list[float] = []
    for table_path in sorted(folder.glob("measurementData*.tsv")):
        with open(table_path, newline="") as fh:
            times += [float(r["time"]) for r in csv.DictReader(fh, delimiter="\t")]
    finite = [t for t in times if math.isfinite(t)]
    if not finite:
        raise SystemExit(f"no finite measurement times in {folder}")
    return finite


# ---------------------------------------------------------------------------------------------
# Child processes (source text written here, run with ``python -c``; arguments via argv)

SB_CHILD = """
import sys
_a = sys.argv[1:]
import scalebridge as sb
sb.load, sb.simulate  # resolve the lazy attributes: imports scalebridge.api and its dependencies
lap("import")
net = sb.load(_a[0])
lap("load")
res = sb.simulate(net, "ode", t_end=float(_a[1]), n_points=int(_a[2]),
                  rtol=float(_a[3]), atol=float(_a[4]))
lap("simulate")
report(steps=int(res.stats["steps"]), species=len(net.species))
"""

RR_CHILD = """
import sys
_a = sys.argv[1:]
import roadrunner
lap("import")
rr = roadrunner.RoadRunner(_a[0])
lap("load")
integ = rr.getIntegrator()
integ.relative_tolerance = float(_a[3])
integ.absolute_tolerance = float(_a[4])
integ.maximum_num_steps = int(_a[5])
res = rr.simulate(0.0, float(_a[1]), int(_a[2]))
lap("simulate")
report(rows=int(res.shape[0]))
"""

PHASES = ("start", "import", "load", "simulate")


def child_args(path: Path, case: Case) -> list[str]:
    return [str(path), repr(case.t_end), str(N_POINTS), repr(RTOL), repr(ATOL), str(RR_MAX_STEPS)]


def median_run(runs: Sequence[FreshRun]) -> FreshRun:
    """The run with the median total (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.total_s)
    return ordered[(len(ordered) - 1) // 2]


# ---------------------------------------------------------------------------------------------
# Measurements


def rel_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple[int, int]]:
    """max |a - b| / (max(|a|, |b|) + atol/rtol) and its (time, species) index.

    A non-finite entry (a failed run) counts as an infinite difference."""
    d = np.abs(a - b) / (np.maximum(np.abs(a), np.abs(b)) + ATOL / RTOL)
    d = np.where(np.isfinite(d), d, np.inf)
    k = np.unravel_index(int(np.argmax(d)), d.shape)
    return float(d[k]), (int(k[0]), int(k[1]))


def measure_in_process(case: Case, quick: bool) -> dict[str, Any]:
    import roadrunner

    import scalebridge as sb
    from scalebridge.problem import TimeCourse
    from scalebridge.wellmixed.compiled import compiled
    from scalebridge.wellmixed.ode import ODE, integrate

    times = np.linspace(0.0, case.t_end, N_POINTS)
    r: dict[str, Any] = {
        "name": case.name,
        "path": str(case.path.relative_to(REPO)),
        "t_end": case.t_end,
        "t_end_from": case.origin,
    }

    # scalebridge
    t0 = time.perf_counter()
    net = sb.load(case.path)
    r["sb_load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cm = compiled(net)
    r["sb_compile_s"] = time.perf_counter() - t0
    r["species"], r["reactions"] = len(net.species), len(net.reactions)
    problem = TimeCourse(net, times)
    names = problem.output_names()
    K = cm.with_records(cm.slot_of(n, problem.quantity_of(n)) for n in names)

    def solver_alone(method: ODE) -> tuple[np.ndarray, dict[str, Any]]:
        y, v = cm.initial({}, problem.t0)
        out = np.full((times.size, len(names)), np.nan)
        stats = integrate(cm, K, y, v, times, out, method)
        return out, stats

    bench = ODE(rtol=RTOL, atol=ATOL)
    t0 = time.perf_counter()
    Y, stats = solver_alone(bench)  # the first call loads (or compiles) the kernels
    r["sb_first_solve_s"] = time.perf_counter() - t0
    r["sb_stats"] = {
        k: int(stats[k])
        for k in ("steps", "rhs_evaluations", "jacobian_evaluations", "lu_factorizations")
    }

    # libRoadRunner
    t0 = time.perf_counter()
    rr = roadrunner.RoadRunner(str(case.path))
    r["rr_load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    roadrunner.RoadRunner(str(case.path))
    r["rr_reload_s"] = time.perf_counter() - t0
    integ = rr.getIntegrator()
    r["rr_integrator"] = integ.getName()

    def rr_tolerances(rtol: float, atol: float) -> None:
        integ.relative_tolerance = rtol
        integ.absolute_tolerance = atol
        integ.maximum_num_steps = RR_MAX_STEPS

    rr_tolerances(RTOL, ATOL)
    sm = net.species_map
    rr.timeCourseSelections = ["time"] + [
        n if sm[n].has_only_substance_units else f"[{n}]" for n in names
    ]

    def rr_simulate() -> np.ndarray:
        rr.resetAll()
        return np.asarray(rr.simulate(times=times))

    R_full = rr_simulate()
    if not np.allclose(R_full[:, 0], times, rtol=1e-12, atol=0.0):
        raise RuntimeError(f"{case.name}: libRoadRunner returned other output times")
    timings = time_interleaved(
        {
            "sb_alone": lambda: solver_alone(bench),
            "sb_whole": lambda: sb.simulate(net, "ode", times=times, rtol=RTOL, atol=ATOL),
            "rr_alone": rr_simulate,
        },
        min_rounds=3 if quick else 7,
        budget_s=0.5 if quick else 3.0,
    )
    r["rr_settings"] = {
        k: integ.getValue(k)
        for k in ("relative_tolerance", "absolute_tolerance", "maximum_num_steps", "stiff")
    }
    R = R_full[:, 1:]

    # Trajectories: at the benchmark tolerances and converged.
    rr_tolerances(REF_RTOL, REF_ATOL)
    R_ref = rr_simulate()[:, 1:]
    Y_ref, _ = solver_alone(ODE(rtol=REF_RTOL, atol=REF_ATOL, max_steps=10_000_000))
    diff, (it, isp) = rel_diff(Y, R)
    r["traj"] = {
        "diff": diff,
        "diff_at": {
            "species": names[isp],
            "time": float(times[it]),
            "scalebridge": float(Y[it, isp]),
            "roadrunner": float(R[it, isp]),
        },
        "sb_error": rel_diff(Y, R_ref)[0],
        "rr_error": rel_diff(R, R_ref)[0],
        "converged_diff": rel_diff(Y_ref, R_ref)[0],
    }
    r.update({k: t.as_dict() for k, t in timings.items()})
    r["ratio_alone"] = timings["sb_alone"].median / timings["rr_alone"].median
    r["ratio_whole"] = timings["sb_whole"].median / timings["rr_alone"].median
    return r


def measure_fresh(case: Case, r: dict[str, Any], quick: bool, cold: bool, scratch: Path) -> None:
    """Fresh-process figures for one model, added to ``r``."""
    n_warm = 1 if quick else 3
    args = child_args(case.path, case)
    sb_warm = [fresh_process(SB_CHILD, args)]
    rr_fresh = [fresh_process(RR_CHILD, args)]
    for _ in range(n_warm - 1):
        sb_warm.append(fresh_process(SB_CHILD, args))
        if rr_fresh[0].total_s < 5.0:  # repeating a long LLVM compile adds little but time
            rr_fresh.append(fresh_process(RR_CHILD, args))
    # (a) a model never seen before: the same file at a new path, so nothing can be keyed on it
    new_path = scratch / f"{case.path.stem}-{secrets.token_hex(4)}{case.path.suffix}"
    shutil.copyfile(case.path, new_path)
    sb_new = fresh_process(SB_CHILD, child_args(new_path, case))
    r["fresh"] = {
        "sb_warm": median_run(sb_warm).as_dict(),
        "sb_warm_runs": len(sb_warm),
        "rr": median_run(rr_fresh).as_dict(),
        "rr_runs": len(rr_fresh),
        "sb_new_model": sb_new.as_dict(),
    }
    if cold:
        # (b) a cold installation: numba finds no cached kernel and compiles each one it needs
        numba_dir = Path(tempfile.mkdtemp(prefix="numba-cold-", dir=scratch))
        sb_cold = fresh_process(
            SB_CHILD, child_args(new_path, case), env={"NUMBA_CACHE_DIR": str(numba_dir)}
        )
        r["fresh"]["sb_cold_install"] = sb_cold.as_dict()
        shutil.rmtree(numba_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Report


def ms(x: float) -> str:
    return fmt(1e3 * x)


def print_model(r: dict[str, Any]) -> None:
    print(
        f"\n== {r['name']}: {r['species']} species, {r['reactions']} reactions, "
        f"t = 0..{fmt(r['t_end'])} ({r['t_end_from']}), {N_POINTS} output times =="
    )
    sa, sw, ra = r["sb_alone"], r["sb_whole"], r["rr_alone"]
    rows = [
        ["load in this process (ms)", ms(r["sb_load_s"]), ms(r["rr_load_s"]), ""],
        ["  again, same process (ms)", "", ms(r["rr_reload_s"]), "in-memory cache"],
        ["compile to kernel tables (ms)", ms(r["sb_compile_s"]), "in load", ""],
        [
            "simulate, solver alone: median (ms)",
            ms(sa["median_s"]),
            ms(ra["median_s"]),
            fmt(r["ratio_alone"]),
        ],
        ["  best (ms)", ms(sa["best_s"]), ms(ra["best_s"]), fmt(sa["best_s"] / ra["best_s"])],
        ["  repeats", sa["n"], ra["n"], ""],
        [
            "simulate, whole sb.simulate: median (ms)",
            ms(sw["median_s"]),
            ms(ra["median_s"]),
            fmt(r["ratio_whole"]),
        ],
    ]
    print(table(["in-process", "scalebridge", "libRoadRunner", "sb/rr"], rows))
    st = r["sb_stats"]
    print(
        f"  scalebridge run: {st['steps']} steps, {st['rhs_evaluations']} rhs, "
        f"{st['jacobian_evaluations']} Jacobians, {st['lu_factorizations']} LU; "
        f"libRoadRunner: {r['rr_integrator']}, settings {r['rr_settings']}"
    )

    f = r["fresh"]
    rows = []
    labelled = [
        ("scalebridge, warm caches", f["sb_warm"], f["sb_warm_runs"]),
        ("scalebridge, (a) model never seen", f["sb_new_model"], 1),
    ]
    if "sb_cold_install" in f:
        labelled.append(("scalebridge, (b) cold installation", f["sb_cold_install"], 1))
    labelled.append(("libRoadRunner (compiles every process)", f["rr"], f["rr_runs"]))
    for label, run, n in labelled:
        ph = run["phases_s"]
        rows.append(
            [
                label,
                *(fmt(ph.get(p, math.nan)) for p in PHASES),
                fmt(run["total_s"]),
                fmt(run["wall_s"]),
                n,
            ]
        )
    print(table(["fresh process (s)", *PHASES, "total", "wall", "runs"], rows))
    tr = r["traj"]
    at = tr["diff_at"]
    print(
        f"  trajectories: scalebridge vs libRoadRunner at rtol={RTOL:g}: {fmt(tr['diff'])} "
        f"({at['species']} at t={fmt(at['time'])}: {at['scalebridge']:.7g} vs "
        f"{at['roadrunner']:.7g})"
    )
    print(
        f"    global error vs converged reference: scalebridge {fmt(tr['sb_error'])}, "
        f"libRoadRunner {fmt(tr['rr_error'])}; converged solutions differ by "
        f"{fmt(tr['converged_diff'])}"
    )


def print_summary(results: list[dict[str, Any]]) -> None:
    print("\n== Summary (times in ms; fresh-process totals in s, measured inside the process) ==")
    rows = []
    for r in ok(results):
        f, tr = r["fresh"], r["traj"]
        cold = f.get("sb_cold_install")
        rows.append(
            [
                r["name"],
                r["species"],
                ms(r["sb_alone"]["median_s"]),
                ms(r["sb_whole"]["median_s"]),
                ms(r["rr_alone"]["median_s"]),
                fmt(r["ratio_alone"]),
                fmt(f["sb_warm"]["total_s"]),
                fmt(f["sb_new_model"]["total_s"]),
                fmt(cold["total_s"]) if cold else "-",
                fmt(f["rr"]["total_s"]),
                fmt(tr["diff"]),
                fmt(tr["sb_error"]),
                fmt(tr["rr_error"]),
            ]
        )
    print(
        table(
            [
                "model",
                "species",
                "sb alone",
                "sb.simulate",
                "rr",
                "ratio",
                "sb warm",
                "sb (a)",
                "sb (b)",
                "rr fresh",
                "diff",
                "sb err",
                "rr err",
            ],
            rows,
        )
    )
    print(
        "  ratio = scalebridge solver alone / libRoadRunner; sb (a) = model never seen, "
        "sb (b) = cold installation; rr fresh = libRoadRunner's first load (it compiles in "
        "every process)"
    )
    for r in results:
        if "error" in r:
            print(f"  FAILED {r['name']}: {r['error']}")
    nets = [r for r in ok(results) if r["name"] in PUBLISHED_ODE_MS]
    if not nets:
        return
    print("\n== Reaction networks beside published figures (ODE, ms per run, median) ==")
    tools = sorted({k for r in nets for k in PUBLISHED_ODE_MS[r["name"]]})
    rows = []
    for r in nets:
        pub = PUBLISHED_ODE_MS[r["name"]]
        rows.append(
            [
                r["name"],
                ms(r["sb_alone"]["median_s"]),
                ms(r["sb_whole"]["median_s"]),
                ms(r["rr_alone"]["median_s"]),
                *(fmt(pub[t]) if t in pub else "-" for t in tools),
            ]
        )
    print(table(["model", "sb alone", "sb.simulate", "libRoadRunner", *tools], rows))
    print(
        "  measured here: first three columns; published (other hardware, tests/data/networks/"
        "README.md): the rest"
    )


def ok(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The models that were measured (not failed)."""
    return [r for r in results if "error" not in r]


def targets(results: list[dict[str, Any]]) -> list[Target]:
    out = [
        Target(
            f"simulate time {r['name']} (solver alone, scalebridge / libRoadRunner)",
            r.get("ratio_alone", math.nan),
            "x",
            "<=",
            SIM_RATIO_GOAL,
        )
        for r in results
    ]
    failed = [r["name"] for r in results if "error" in r]
    results = ok(results)
    small = [r for r in results if r["species"] < SMALL]
    if not results:
        return out

    def worst(rs: list[dict[str, Any]], key: str) -> tuple[str, float]:
        vals = [(r["name"], r["fresh"][key]["total_s"]) for r in rs if key in r["fresh"]]
        return max(vals, key=lambda x: x[1]) if vals else ("none measured", math.nan)

    if small:
        name, v = worst(small, "sb_warm")
        out.append(
            Target(
                f"load-to-first-result in a fresh process with warm caches, models "
                f"under {SMALL} species (worst {name})",
                v,
                "s",
                "<=",
                WARM_LOAD_GOAL_S,
            )
        )
        name, v = worst(small, "sb_new_model")
        out.append(
            Target(
                f"first ever load (a) model never seen, models under {SMALL} species "
                f"(worst {name})",
                v,
                "s",
                "<=",
                FIRST_LOAD_GOAL_S,
            )
        )
        name, v = worst(small, "sb_cold_install")
        out.append(
            Target(
                f"first ever load (b) cold installation, models under {SMALL} species "
                f"(worst measured {name})",
                v,
                "s",
                "<=",
                FIRST_LOAD_GOAL_S,
            )
        )
    conv = max(results, key=lambda r: r["traj"]["converged_diff"])
    worst_conv = ", ".join(failed) + " failed" if failed else conv["name"]
    out.append(
        Target(
            f"trajectories agree within tolerances (converged solutions at "
            f"rtol={REF_RTOL:g}, worst {worst_conv})",
            math.inf if failed else conv["traj"]["converged_diff"],
            "rel",
            "<=",
            RTOL,
        )
    )

    # Errors below rtol count as rtol: both tools then meet what was asked of them.
    def err_ratio(r: dict[str, Any]) -> float:
        return float(max(r["traj"]["sb_error"], RTOL) / max(r["traj"]["rr_error"], RTOL))

    acc = max(results, key=err_ratio)
    out.append(
        Target(
            f"global error at rtol={RTOL:g} within {fmt(ACCURACY_RATIO_GOAL)}x of "
            f"libRoadRunner's (scalebridge / libRoadRunner, errors below rtol counted as rtol, "
            f"worst {acc['name']})",
            err_ratio(acc),
            "x",
            "<=",
            ACCURACY_RATIO_GOAL,
        )
    )
    egfr = next((r for r in results if r["name"] == "egfr_net"), None)
    if "egfr_net" in failed:  # its targets are printed, with nothing measured: missed
        nan = {"total_s": math.nan}
        egfr = {"ratio_alone": math.nan, "sb_alone": {"median_s": math.nan},
                "fresh": {"sb_new_model": nan, "sb_cold_install": nan, "rr": nan}}  # fmt: skip
    if egfr is not None:
        f = egfr["fresh"]
        out += [
            Target(
                "egfr_net simulate within 2x of libRoadRunner (solver alone)",
                egfr["ratio_alone"],
                "x",
                "<=",
                SIM_RATIO_GOAL,
            ),
            Target(
                "egfr_net simulate faster than COPASI's published time (solver alone)",
                1e3 * egfr["sb_alone"]["median_s"],
                "ms",
                "<",
                COPASI_EGFR_MS,
            ),
            Target(
                "egfr_net first ever load (a) model never seen, faster than libRoadRunner's "
                "first load",
                f["sb_new_model"]["total_s"],
                "s",
                "<",
                f["rr"]["total_s"],
            ),
        ]
        if "sb_cold_install" in f:
            out.append(
                Target(
                    "egfr_net first ever load (b) cold installation, faster than "
                    "libRoadRunner's first load",
                    f["sb_cold_install"]["total_s"],
                    "s",
                    "<",
                    f["rr"]["total_s"],
                )
            )
    return out


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats and one fresh process per case (a smoke test)",
    )
    p.add_argument("--models", help="comma-separated model names (default: all)")
    p.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    p.add_argument(
        "--cold-all",
        action="store_true",
        help="measure the cold installation (b) on every model, not only on the "
        "first model under 100 species and on egfr_net",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = all_cases()
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        known = {c.name: c for c in cases}
        unknown = [m for m in wanted if m not in known]
        if unknown:
            print(
                f"unknown model(s): {', '.join(unknown)}; choose from {', '.join(known)}",
                file=sys.stderr,
            )
            return 2
        cases = [known[m] for m in wanted]
    env = environment(["scalebridge", "libroadrunner", "numba", "numpy", "scipy"])
    t_run = time.perf_counter()
    print("ODE benchmark: scalebridge vs libRoadRunner, side by side")
    print(
        f"  {env['platform']}, {env['cpus']} CPUs, load average {env['load_average']}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    )
    print(
        f"  tolerances rtol={RTOL:g}, atol={ATOL:g} (absolute, on amounts) for both; "
        f"{N_POINTS} output times; libRoadRunner CVODE maximum_num_steps={RR_MAX_STEPS}"
    )
    print(
        "  solver alone: scalebridge cm.initial + integrate on a compiled model (the cost of a "
        "repeated simulation of a loaded model); libRoadRunner resetAll() + simulate()"
    )
    print(
        f"  rel. difference: max over species and output times of |a - b| / (max(|a|, |b|) + "
        f"atol/rtol), atol/rtol = {ATOL / RTOL:g}; converged reference: libRoadRunner at "
        f"rtol={REF_RTOL:g}, atol={REF_ATOL:g}"
    )
    results: list[dict[str, Any]] = []
    # One untimed child of each kind on the smallest model first: the measured children then
    # find the shared libraries and byte code in the operating system's file cache, as they are
    # after any earlier use of the machine ("warm caches").
    smallest = min(all_cases(), key=lambda c: c.path.stat().st_size)
    fresh_process(SB_CHILD, child_args(smallest.path, smallest))
    fresh_process(RR_CHILD, child_args(smallest.path, smallest))
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        for case in cases:
            try:
                r = measure_in_process(case, args.quick)
            except (ScalebridgeError, RuntimeError) as exc:
                print(f"\n== {case.name}: FAILED in process: {exc}")
                results.append({"name": case.name, "error": str(exc)})
                continue
            # A cold installation compiles every kernel (tens of seconds): by default it is
            # measured on the first model under SMALL species (dense linear algebra) and on
            # egfr_net (sparse).
            small_done = any(
                "sb_cold_install" in x["fresh"] and x["species"] < SMALL for x in ok(results)
            )
            cold = (
                args.cold_all
                or case.name == "egfr_net"
                or (r["species"] < SMALL and not small_done)
            )
            try:
                measure_fresh(case, r, args.quick, cold, Path(tmp))
            except FreshProcessError as exc:
                print(f"\n== {case.name}: FAILED in a fresh process: {exc}")
                results.append({"name": case.name, "error": str(exc)})
                continue
            print_model(r)
            results.append(r)
    print_summary(results)
    tlist = targets(results)
    elapsed = time.perf_counter() - t_run
    load = environment()["load_average"]
    print(f"\n(benchmark ran for {elapsed:.0f} s; load average now {load})\n")
    for t in tlist:
        print(t.line())
    if args.json:
        save_json(
            args.json,
            {
                "environment": env,
                "settings": _settings(),
                "models": results,
                "targets": [t.as_dict() for t in tlist],
                "elapsed_s": elapsed,
            },
        )
    return 0


def _settings() -> dict[str, Any]:
    return {
        "rtol": RTOL,
        "atol": ATOL,
        "reference_rtol": REF_RTOL,
        "reference_atol": REF_ATOL,
        "n_points": N_POINTS,
        "roadrunner_maximum_num_steps": RR_MAX_STEPS,
        "relative_difference": "max |a-b| / (max(|a|,|b|) + atol/rtol)",
        "published_ode_ms": PUBLISHED_ODE_MS,
    }


if __name__ == "__main__":
    sys.exit(main())
