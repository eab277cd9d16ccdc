"""Exact stochastic simulation (SSA), side by side with rebop, GillesPy2 and a plain C loop.

Three parts (``--part gene|networks|size``; all by default):

1. **gene** -- the two-stage gene expression model (0 -> M at k_m = 10; M -> 0 at g_m M, g_m = 1;
   M -> M + P at k_p M, k_p = 5; P -> 0 at g_p P, g_p = 0.1), from M = P = 0 to t = 1000 with 1001
   output points, 2000 runs on one core, by

   * scalebridge, ``SSA(variant).prepare(problem)`` + ``run_runs(prepared, rng_states, out)`` on
     one thread, both variants; and the whole ``sb.simulate(net, "ssa", runs=..., workers=1)``;
   * rebop 0.9 (Rust), one ``run`` per trajectory: its core call (``Gillespie.gillespie.run``,
     which returns a dict of arrays) and its public API (``Gillespie.run``, an xarray Dataset);
   * GillesPy2 1.8's C++ SSA solver, built once (the build is timed and printed, not counted):
     ``SSACSolver.run(number_of_trajectories=n)`` (the user's call: the executable writes text
     that Python decodes) and the built executable alone, its output sent to /dev/null;
   * GillesPy2's NumPy SSA solver on fewer runs (events/s do not depend on the run count);
   * the C floor ``../shared/bench/ssa_floor.c`` (direct method, xoshiro256+, written as tight
     C), compiled here with ``gcc -O3 -march=native``; its own clock (it times only its loop).

   The runs are split into rounds, and each round runs every tool in turn, so that a change of
   load on a shared machine affects all tools alike.

   *Events are counted identically for every tool*: events/s = (expected number of reactions)
   / wall time, the expectation being exact for this linear network,
   ``E[events in (0, T)] = int_0^T (k_m + (g_m + k_p) E[M(t)] + g_p E[P(t)]) dt``
   (closed form in :func:`gene_expected_events`; about 1.19e5 per run, standard deviation of
   the total over 2000 runs about 1e-4 of it).  Where a tool counts its own events
   (scalebridge's ``events`` statistic, the C floor) the count is printed beside it.  Every tool's
   protein mean and Fano factor at t = 1000 are checked against the exact values (mean from the
   moment equations, Fano 1 + k_p / (g_m + g_p) at stationarity), so that a fast but wrong
   simulator shows up.

2. **networks** -- the three published benchmark networks of the Catalyst paper
   (``tests/data/networks``: multistate to t = 1e5, multisite2 to t = 1e4, egfr_net to t = 1e3),
   one run each: scalebridge (both variants: each to a tenth of the end time, then the faster to
   the end time) and rebop, beside the published Catalyst, COPASI, BioNetGen and GillesPy2
   median wall times (measured on other hardware: compare ratios).  rebop gets the network
   through scalebridge's compiled model: every reaction is mass action, rate constant ``c_j``
   and reactant orders, in rebop's convention ``a_j = c_j prod_i x_i (x_i - 1) ...`` -- the
   same falling-factorial form scalebridge uses (the script checks both: propensities of the
   converted network against scalebridge's at many states, and rebop's own convention on
   ``2A -> B`` statistically).  rebop counts its events through an extra product species that
   every reaction increments and no propensity reads.  rebop is capped in wall time: where it
   cannot reach the end time within the cap, it runs to an earlier time and its wall time to
   the end time is projected from its event rate and scalebridge's event count.

3. **size** -- sparse random mass-action networks of 10, 100, 1,000 and 10,000 reactions
   (:mod:`gen_networks`), after a burn-in so that the populations have settled: events/s of both
   variants (and rebop, for context), each run long enough to take about a second.

Options: ``--quick`` (fewer runs, a tenth of the network end times, with projected times),
``--part``, ``--json FILE``, ``--rounds N`` (gene: rounds of runs), ``--floor PATH``.

Ends with one line per target:
``target <name>: measured <value> <unit>; goal <op> <value>; met|missed``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import scalebridge as sb
from _common import REPO, Target, environment, fmt, save_json, table
from gen_networks import random_network
from scalebridge.model.network import ReactionNetwork
from scalebridge.problem import TimeCourse
from scalebridge.wellmixed.propensity import all_propensities, stream_states
from scalebridge.wellmixed.ssa import SSA, VARIANTS
from scalebridge.wellmixed.stochastic_base import Prepared

PACKAGES = ("scalebridge", "numpy", "numba", "rebop", "gillespy2", "xarray")
FLOOR_SOURCE = REPO.parent / "shared" / "bench" / "ssa_floor.c"
NETWORKS_DIR = REPO / "tests" / "data" / "networks"

# -- part 1: the two-stage gene model --------------------------------------------------------
KM, GM, KP, GP = 10.0, 1.0, 5.0, 0.1
GENE_T_END = 1000.0
GENE_POINTS = 1001
GENE_RUNS = 2000
GENE_ANTIMONY = f"""
model two_stage
  transcription: -> M; km
  mrna_decay: M -> ; gm*M
  translation: -> P; kp*M
  protein_decay: P -> ; gp*P
  km = {KM}; gm = {GM}; kp = {KP}; gp = {GP}
  M = 0; P = 0
end
"""
GOAL_VS_REBOP = 1.0
GOAL_VS_FLOOR = 0.6
GOAL_VS_GILLESPY2 = 5.0

# -- part 2: published networks ----------------------------------------------------------------
NETWORK_T_END = {"multistate": 1e5, "multisite2": 1e4, "egfr_net": 1e3}
# Published median wall times (ms) of one SSA run, single thread, from
# tests/data/networks/README.md (Catalyst paper, Loman et al. 2023; other hardware).
PUBLISHED_SSA_MS: dict[str, dict[str, float]] = {
    "multistate": {
        "Catalyst RSSA": 8876.0,
        "Catalyst Direct": 12470.0,
        "COPASI": 24590.0,
        "BioNetGen": 36040.0,
        "GillesPy2 C++": 63100.0,
        "GillesPy2 NumPy": 1998000.0,
    },
    "multisite2": {
        "Catalyst RSSA": 74290.0,
        "Catalyst SortingDirect": 93750.0,
        "COPASI": 464100.0,
        "BioNetGen": 418700.0,
        "GillesPy2 C++": 815500.0,
    },
    "egfr_net": {
        "Catalyst RSSACR": 26580.0,
        "Catalyst RSSA": 55830.0,
        "BioNetGen": 453000.0,
    },
}
MULTISTATE_EVENTS_GOAL = 2e7  # events/s (Catalyst's best published: 1.28e8 events / 8.876 s)
NETWORK_POINTS = 101
REBOP_CAP_S = {"full": 40.0, "quick": 8.0}  # wall-time cap of one rebop network run

# -- part 3: network size ------------------------------------------------------------------------
SIZES = (10, 100, 1000, 10000)
SIZE_SEED = 1
SIZE_BURN_IN = 5.0  # time units (the ring moves every species on within about one)
SIZE_RUN_S = {"full": 1.0, "quick": 0.3}  # wall time of one timed run
SIZE_REPEATS = {"full": 3, "quick": 1}
SIZE_RATIO_GOAL = 1.0 / 3.0  # composition-rejection at 10,000 reactions vs at 10

COUNTER = "n_events__"  # rebop's event counter species
FLOOR_NAME = "C floor (ssa_floor.c, gcc -O3 -march=native)"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# =============================================================================================
# Part 1: the two-stage gene model


def gene_mean_m(t: float) -> float:
    return KM / GM * (1.0 - math.exp(-GM * t))


def gene_mean_p(t: float) -> float:
    """E[P(t)] from M = P = 0: the solution of dE[P]/dt = k_p E[M] - g_p E[P]."""
    a = KP * KM / (GM * GP)
    return a * (1.0 - (GM * math.exp(-GP * t) - GP * math.exp(-GM * t)) / (GM - GP))


def gene_expected_events(t: float) -> float:
    """Expected number of reactions of one run in (0, t): the integral of the expected total
    propensity ``k_m + (g_m + k_p) E[M] + g_p E[P]`` (exact: the propensities are linear)."""
    int_m = KM / GM * (t - (1.0 - math.exp(-GM * t)) / GM)
    a = KP * KM / (GM * GP)
    int_p = a * (
        t - (GM * (1 - math.exp(-GP * t)) / GP - GP * (1 - math.exp(-GM * t)) / GM) / (GM - GP)
    )
    return KM * t + (GM + KP) * int_m + GP * int_p


def gene_exact_fano() -> float:
    """Stationary Fano factor of P (exact for this linear network); at t = 1000 the transient
    has decayed as exp(-g_p t) = exp(-100)."""
    return 1.0 + KP / (GM + GP)


@dataclass
class Tool:
    """One way of running the gene model: ``run(first_run, n_runs)`` returns the protein counts
    at the end time (or None where the tool's output is discarded) and the tool's own event
    count (or None), and is timed by the caller."""

    name: str
    run: Callable[[int, int], tuple[np.ndarray | None, int | None]]
    runs_per_round: int
    total_runs: int
    wall: float = 0.0
    runs: int = 0
    counted: int | None = 0
    p_end: list[np.ndarray] = field(default_factory=list)
    internal_wall: float | None = None  # the tool's own clock, where it reports one
    error: str | None = None
    moments: list[tuple[int, float, float]] = field(default_factory=list)  # C floor's output
    keep: Any = None  # an object that must live as long as the tool

    def events_per_s(self, per_run: float) -> float:
        wall = self.internal_wall if self.internal_wall is not None else self.wall
        if self.error or self.runs == 0 or wall <= 0:
            return math.nan
        return per_run * self.runs / wall


def sb_tool_name(variant: str) -> str:
    return f"scalebridge {variant} (prepare + run_runs)"


def short(variant: str) -> str:
    return {"composition-rejection": "CR", "rssa": "RSSA"}.get(variant, variant)


def _failed(name: str, error: str) -> Tool:
    return Tool(name, lambda a, b: (None, None), 0, 0, error=error)


def _scalebridge_tools(net: ReactionNetwork, runs: int, seed: int, per_round: int) -> list[Tool]:
    times = np.linspace(0.0, GENE_T_END, GENE_POINTS)
    problem = TimeCourse(net, times)
    states = stream_states(np.random.SeedSequence(seed).spawn(runs))
    tools = []
    for variant in VARIANTS:
        method = SSA(variant=variant)

        def run(first: int, n: int, method: SSA = method) -> tuple[np.ndarray, int]:
            prepared = method.prepare(problem)
            out = np.empty((n, times.size, len(prepared.names)))
            st = method.run_runs(prepared, states[first : first + n], out)
            return out[:, -1, prepared.names.index("P")], int(st["events"])

        # Warm-up: load (or compile) the kernels, compile the model (cached on the network).
        method.run_runs(
            method.prepare(problem),
            stream_states(np.random.SeedSequence(0).spawn(2)),
            np.empty((2, times.size, 2)),
        )
        tools.append(Tool(sb_tool_name(variant), run, per_round, runs))

    def simulate(first: int, n: int) -> tuple[np.ndarray, int]:
        res = sb.simulate(
            net,
            "ssa",
            t_end=GENE_T_END,
            n_points=GENE_POINTS,
            runs=n,
            seed=seed + first,
            workers=1,
            progress=False,
        )
        return np.asarray(res.data["P"].values[:, -1]), int(res.stats["events"])

    simulate(0, 2)
    tools.append(Tool("scalebridge sb.simulate(workers=1), direct", simulate, per_round, runs))
    return tools


def _rebop_gene() -> Any:
    import rebop

    g = rebop.Gillespie()
    g.add_reaction(KM, [], ["M"])
    g.add_reaction(GM, ["M"], [])
    g.add_reaction(KP, ["M"], ["M", "P"])
    g.add_reaction(GP, ["P"], [])
    return g


def _rebop_tools(seed: int, runs: int, per_round: int) -> list[Tool]:
    g = _rebop_gene()
    g.gillespie.set_init({})
    n_steps = GENE_POINTS - 1  # rebop: nb_steps + 1 equally spaced times, 0 and tmax included

    def core(first: int, n: int) -> tuple[np.ndarray, None]:
        p = np.empty(n)
        for r in range(n):
            _, res = g.gillespie.run(
                GENE_T_END, n_steps, params={}, seed=seed + first + r, sparse=None, var_names=None
            )
            p[r] = res["P"][-1]
        return p, None

    def public(first: int, n: int) -> tuple[np.ndarray, None]:
        p = np.empty(n)
        for r in range(n):
            ds = g.run({}, tmax=GENE_T_END, nb_steps=n_steps, rng=seed + first + r)
            p[r] = ds["P"].values[-1]
        return p, None

    times, _ = g.gillespie.run(GENE_T_END, n_steps, params={}, seed=0, sparse=None, var_names=None)
    if len(times) != GENE_POINTS or times[-1] != GENE_T_END:
        raise RuntimeError(f"rebop returned {len(times)} times ending at {times[-1]}")
    public(0, 1)
    return [
        Tool("rebop core (Gillespie.gillespie.run)", core, per_round, runs),
        Tool("rebop public API (Gillespie.run -> xarray)", public, per_round, runs),
    ]


def _gillespy2_model() -> Any:
    import gillespy2 as g

    m = g.Model(name="two_stage")
    m.add_parameter(
        [
            g.Parameter(name=n, expression=v)
            for n, v in (("km", KM), ("gm", GM), ("kp", KP), ("gp", GP))
        ]
    )
    m.add_species([g.Species(name=s, initial_value=0, mode="discrete") for s in ("M", "P")])
    m.add_reaction(
        [
            g.Reaction(name="transcription", reactants={}, products={"M": 1}, rate="km"),
            g.Reaction(name="mrna_decay", reactants={"M": 1}, products={}, rate="gm"),
            g.Reaction(
                name="translation", reactants={"M": 1}, products={"M": 1, "P": 1}, rate="kp"
            ),
            g.Reaction(name="protein_decay", reactants={"P": 1}, products={}, rate="gp"),
        ]
    )
    m.timespan(g.TimeSpan.linspace(t=GENE_T_END, num_points=GENE_POINTS))
    return m


def _gillespy2_tools(
    seed: int,
    runs: int,
    per_round: int,
    numpy_runs: int,
    numpy_per_round: int,
    notes: dict[str, Any],
) -> list[Tool]:
    # GillesPy2 builds with SCons, which it finds on PATH (else it runs ``python -m SCons``
    # with the base interpreter, outside this virtual environment).
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    import gillespy2
    from gillespy2 import NumPySSASolver, SSACSolver

    logging.getLogger("GillesPy2").setLevel(logging.ERROR)
    model = _gillespy2_model()
    t0 = time.perf_counter()
    solver = SSACSolver(model=model)  # generates, compiles and links the C++ simulation
    notes["gillespy2_build_s"] = time.perf_counter() - t0
    exe = solver.build_engine.get_executable_path()
    if not exe or not Path(exe).is_file():
        raise RuntimeError("GillesPy2's SSACSolver left no executable")
    notes["gillespy2_solver"] = f"{type(solver).__name__} (executable {Path(exe).name})"
    log(
        f"  GillesPy2 {gillespy2.__version__}: {notes['gillespy2_solver']} built in "
        f"{notes['gillespy2_build_s']:.1f} s (not counted)"
    )

    def run(first: int, n: int) -> tuple[np.ndarray, None]:
        res = solver.run(number_of_trajectories=n, seed=seed + first)
        return np.array([float(tr["P"][-1]) for tr in res]), None

    def executable(first: int, n: int) -> tuple[None, None]:
        # The arguments SSACSolver.run passes (gillespy2/solvers/cpp/ssa_c_solver.py).
        n_t = str(GENE_POINTS)
        args = [
            exe,
            "--trajectories",
            str(n),
            "--timesteps",
            n_t,
            "--end",
            str(GENE_T_END),
            "--interval",
            n_t,
            "--seed",
            str(seed + first),
        ]
        subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
        return None, None

    numpy_solver = NumPySSASolver(model=model)

    def numpy_run(first: int, n: int) -> tuple[np.ndarray, None]:
        res = numpy_solver.run(number_of_trajectories=n, seed=seed + first)
        return np.array([float(tr["P"][-1]) for tr in res]), None

    first = solver.run(number_of_trajectories=1, seed=1)
    if len(first[0]["time"]) != GENE_POINTS or first[0].solver_name != "SSACSolver":
        raise RuntimeError(
            f"GillesPy2's C++ solver returned {len(first[0]['time'])} time points "
            f"from {first[0].solver_name}"
        )
    return [
        # The build folder (and executable) lives as long as the solver.
        Tool("GillesPy2 C++ (SSACSolver.run)", run, per_round, runs, keep=solver),
        Tool("GillesPy2 C++ executable alone", executable, per_round, runs, keep=solver),
        Tool("GillesPy2 NumPy (NumPySSASolver.run)", numpy_run, numpy_per_round, numpy_runs),
    ]


_FLOOR_LINE = re.compile(
    r"events (\d+) seconds ([\d.eE+-]+) events_per_s ([\d.eE+-]+) meanP ([\d.eE+-]+) "
    r"fanoP ([\d.eE+-]+)"
)


def _floor_tool(
    source: Path, workdir: Path, runs: int, per_round: int, notes: dict[str, Any]
) -> Tool:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc not found")
    exe = workdir / "ssa_floor"
    cmd = [gcc, "-O3", "-march=native", "-o", str(exe), str(source), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    notes["floor_compile"] = " ".join(cmd[:3]) + f" {source.name} -lm"

    def run(first: int, n: int) -> tuple[None, int]:
        out = subprocess.run(
            [str(exe), str(n), repr(GENE_T_END)], check=True, capture_output=True, text=True
        ).stdout
        m = _FLOOR_LINE.search(out)
        if m is None:
            raise RuntimeError(f"unexpected output from ssa_floor: {out!r}")
        assert tool.internal_wall is not None
        tool.internal_wall += float(m.group(2))
        tool.moments.append((n, float(m.group(4)), float(m.group(5))))
        return None, int(m.group(1))

    tool = Tool(FLOOR_NAME, run, per_round, runs, internal_wall=0.0)
    return tool


def part_gene(args: argparse.Namespace, report: dict[str, Any]) -> list[Target]:
    runs = GENE_RUNS if not args.quick else 200
    rounds = args.rounds or (4 if not args.quick else 2)
    per_round = math.ceil(runs / rounds)
    numpy_runs = 8 if not args.quick else 2
    numpy_per_round = max(1, numpy_runs // rounds)
    seed = 20240601
    per_run = gene_expected_events(GENE_T_END)
    log(
        f"== Part 1: two-stage gene model, {runs} runs to t = {GENE_T_END:g}, {GENE_POINTS} "
        f"output points, one core, {rounds} interleaved rounds"
    )
    log(f"  expected reactions per run (exact): {per_run:.1f}; total {per_run * runs:.4g}")
    notes: dict[str, Any] = {}
    net = sb.from_antimony(GENE_ANTIMONY)
    tools: list[Tool] = []
    builders: list[tuple[str, Callable[[], list[Tool]]]] = [
        ("scalebridge", lambda: _scalebridge_tools(net, runs, seed, per_round)),
        ("rebop", lambda: _rebop_tools(seed, runs, per_round)),
        (
            "GillesPy2",
            lambda: _gillespy2_tools(seed, runs, per_round, numpy_runs, numpy_per_round, notes),
        ),
    ]
    workdir = Path(tempfile.mkdtemp(prefix="sb_ssa_bench_"))
    try:
        for what, build in builders:
            try:
                tools += build()
            except Exception as e:  # a comparator that cannot run is reported, not fatal
                log(f"  {what}: cannot run ({type(e).__name__}: {e})")
                tools.append(_failed(what, str(e)))
        try:
            tools.append(_floor_tool(Path(args.floor), workdir, runs, per_round, notes))
        except Exception as e:
            log(f"  C floor: cannot run ({type(e).__name__}: {e})")
            tools.append(_failed(FLOOR_NAME, str(e)))

        for k in range(rounds):
            order = tools[k % len(tools) :] + tools[: k % len(tools)]  # rotate the start
            for tool in order:
                if tool.error or tool.runs >= tool.total_runs:
                    continue
                first = tool.runs
                n = min(tool.runs_per_round, tool.total_runs - first)
                try:
                    t0 = time.perf_counter()
                    p_end, counted = tool.run(first, n)
                    tool.wall += time.perf_counter() - t0
                except Exception as e:
                    tool.error = f"{type(e).__name__}: {e}"
                    log(f"  {tool.name}: failed ({tool.error})")
                    continue
                tool.runs += n
                if p_end is not None:
                    tool.p_end.append(np.asarray(p_end, dtype=float))
                if counted is None:
                    tool.counted = None
                elif tool.counted is not None:
                    tool.counted += counted
            log(f"  round {k + 1}/{rounds} done (load {loadavg()})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    mean_exact, fano_exact = gene_mean_p(GENE_T_END), gene_exact_fano()
    by_name = {t.name: t for t in tools}

    def rate_of(name: str) -> float:
        t = by_name.get(name)
        return t.events_per_s(per_run) if t is not None else math.nan

    ref_rate = {v: rate_of(sb_tool_name(v)) for v in VARIANTS}
    rows = []
    out_tools = []
    for t in tools:
        rate = t.events_per_s(per_run)
        if t.p_end:
            p = np.concatenate(t.p_end)
            n = p.size
            mean, var = float(p.mean()), float(p.var(ddof=1)) if n > 1 else math.nan
            z = (mean - mean_exact) / math.sqrt(fano_exact * mean_exact / n)
            fano = var / mean if mean > 0 else math.nan
            moments = f"{mean:.1f} ({z:+.1f})  {fano:.2f}"
        elif t.moments:
            n, mean, fano = t.moments[0]  # every call repeats the floor's fixed seed
            z = (mean - mean_exact) / math.sqrt(fano_exact * mean_exact / n)
            moments = f"{mean:.1f} ({z:+.1f})  {fano:.2f}"
        else:
            mean = fano = z = math.nan
            moments = "-"
        counted = (
            f"{t.counted / (per_run * t.runs) - 1:+.2%}"
            if t.counted is not None and t.runs and not t.error
            else "-"
        )
        wall = t.internal_wall if t.internal_wall is not None else t.wall
        rows.append(
            [
                t.name if not t.error else f"{t.name} (failed)",
                t.runs,
                f"{wall:.2f}",
                fmt(rate),
                counted,
                moments,
                *(f"{ref_rate[v] / rate:.2f}" for v in VARIANTS),
            ]
        )
        out_tools.append(
            {
                "name": t.name,
                "runs": t.runs,
                "wall_s": t.wall,
                "internal_wall_s": t.internal_wall,
                "events_per_s": rate,
                "own_event_count": t.counted,
                "p_mean": mean,
                "p_mean_z": z,
                "p_fano": fano,
                "error": t.error,
            }
        )
    log("")
    log(
        table(
            [
                "tool",
                "runs",
                "time s",
                "events/s",
                "own count vs expected",
                "P mean (z)  Fano",
                *(f"{short(v)} / tool" for v in VARIANTS),
            ],
            rows,
        )
    )
    log(
        f"  exact: P mean {mean_exact:.2f}, Fano {fano_exact:.3f}; z = (mean - exact) / "
        "standard error (|z| > 4 would point at a wrong simulator)"
    )
    log(
        "  events/s = expected reactions (exact, identical for every tool) / wall time; the C "
        "floor's time is its own loop clock; 'own count' is the tool's event counter"
    )
    log(
        "  <variant> / tool: scalebridge's events/s with that variant (prepare + run_runs) over "
        "the tool's"
    )
    mine = ref_rate["direct"]
    # Two rebop figures: the user's call (returns xarray, like sb.simulate; the issue's
    # "about 4.4e7 events/s measured here") and its inner call (a dict of arrays, the fastest).
    targets = [
        Target(
            "ssa gene scalebridge/rebop (sb.simulate vs rebop public API)",
            rate_of("scalebridge sb.simulate(workers=1), direct")
            / rate_of("rebop public API (Gillespie.run -> xarray)"),
            "x",
            ">=",
            GOAL_VS_REBOP,
        ),
        Target(
            "ssa gene scalebridge/rebop (direct run_runs vs rebop core)",
            mine / rate_of("rebop core (Gillespie.gillespie.run)"),
            "x",
            ">=",
            GOAL_VS_REBOP,
        ),
        Target(
            "ssa gene scalebridge/C floor (direct)",
            mine / rate_of(FLOOR_NAME),
            "x",
            ">=",
            GOAL_VS_FLOOR,
        ),
        Target(
            "ssa gene scalebridge/GillesPy2 C++ (direct vs executable alone)",
            mine / rate_of("GillesPy2 C++ executable alone"),
            "x",
            ">=",
            GOAL_VS_GILLESPY2,
        ),
    ]
    report["gene"] = {
        "runs": runs,
        "rounds": rounds,
        "t_end": GENE_T_END,
        "points": GENE_POINTS,
        "expected_events_per_run": per_run,
        "p_mean_exact": mean_exact,
        "p_fano_exact": fano_exact,
        "tools": out_tools,
        **notes,
    }
    return targets


# =============================================================================================
# rebop from scalebridge's compiled model


def rebop_reactions(p: Prepared) -> list[tuple[float, list[str], list[str]]]:
    """Every reaction as ``(c_j, reactants, products)`` with multiplicities, for rebop's
    mass-action form ``a_j = c_j prod_i ff(x_i, nu_ij)`` -- scalebridge's combinatorial form.

    Raises ValueError for a reaction that is not mass action (rebop would need its law as text).
    """
    T = p.T
    names = p.sm.species
    out = []
    for j in range(T.n_reactions):
        if not T.is_ma[j]:
            raise ValueError(f"reaction '{p.sm.reactions[j]}' is not mass action")
        c = float(p.v0[T.c_slot[j]])
        order = {int(T.ma_idx[q]): int(T.ma_ord[q]) for q in range(T.ma_ptr[j], T.ma_ptr[j + 1])}
        prod = dict(order)
        for q in range(T.st_ptr[j], T.st_ptr[j + 1]):
            i = int(T.st_idx[q])
            prod[i] = prod.get(i, 0) + round(float(T.st_val[q]))
        if any(v < 0 for v in prod.values()):
            raise ValueError(f"reaction '{p.sm.reactions[j]}' consumes a non-reactant")
        reac = [names[i] for i, n in order.items() for _ in range(n)]
        products = [names[i] for i, n in prod.items() for _ in range(n)]
        out.append((c, reac, products))
    return out


def check_conversion(
    p: Prepared,
    reactions: Sequence[tuple[float, list[str], list[str]]],
    rng: np.random.Generator,
    n_states: int = 50,
) -> float:
    """Largest relative difference between scalebridge's propensities and those of the converted
    reactions in rebop's form, over the initial state and random states with small counts
    (where the falling factorials differ from powers)."""
    T = p.T
    idx = {s: i for i, s in enumerate(p.sm.species)}
    stack = np.empty(max(T.stack_size, 1))
    a = np.empty(T.n_reactions)
    hi = int(max(10.0, p.x0.max()))
    states = [p.x0] + [
        rng.integers(0, rng.choice([4, 30, hi]) + 1, size=T.n_species).astype(float)
        for _ in range(n_states)
    ]
    worst = 0.0
    for x in states:
        xp = np.append(x, 1.0)  # the kernels' extra constant slot
        all_propensities(T, xp, p.v0.copy(), a, stack)
        for j, (c, reac, _) in enumerate(reactions):
            mine = c
            seen: dict[str, int] = {}
            for s in reac:
                mine *= x[idx[s]] - seen.get(s, 0)  # falling factorial x (x - 1) ...
                seen[s] = seen.get(s, 0) + 1
            worst = max(worst, abs(mine - a[j]) / max(abs(a[j]), 1e-300) if a[j] else abs(mine))
    return worst


def check_rebop_convention(n: int = 400) -> tuple[float, float]:
    """rebop's propensity of ``2A -> B`` at rate 1 from A = 2: the probability that it fired by
    t = 1 is ``1 - exp(-2)`` if ``a = k x (x - 1)`` (the falling factorial, our form), and
    ``1 - exp(-1)`` if ``a = k x (x - 1) / 2``.  Returns the estimate and its z-score against
    the falling-factorial value (the two values are 12 standard errors apart at n = 400)."""
    import rebop

    g = rebop.Gillespie()
    g.add_reaction(1.0, ["A", "A"], ["B"])
    g.gillespie.set_init({"A": 2})
    hits = 0
    for s in range(n):
        _, res = g.gillespie.run(1.0, 1, params={}, seed=s, sparse=None, var_names=None)
        hits += int(res["B"][-1])
    est = hits / n
    q = 1 - math.exp(-2.0)
    return est, (est - q) / math.sqrt(q * (1 - q) / n)


class RebopNetwork:
    """A network converted for rebop, with an event counter species."""

    def __init__(self, p: Prepared):
        import rebop

        self.reactions = rebop_reactions(p)
        self.g = rebop.Gillespie()
        for c, reac, products in self.reactions:
            self.g.add_reaction(c, reac, [*products, COUNTER])
        self.init = {s: int(x) for s, x in zip(p.sm.species, p.x0, strict=True) if x}
        self.sparse: bool | None = None

    def run(self, t_end: float, seed: int, sparse: bool | None = None) -> tuple[int, float]:
        """One run to ``t_end``: (events, wall time in s)."""
        self.g.gillespie.set_init(self.init)
        t0 = time.perf_counter()
        _, res = self.g.gillespie.run(
            t_end,
            NETWORK_POINTS - 1,
            params={},
            seed=seed,
            sparse=self.sparse if sparse is None else sparse,
            var_names=[COUNTER],
        )
        return int(res[COUNTER][-1]), time.perf_counter() - t0

    def choose_representation(self, per_time: float) -> dict[str, float]:
        """rebop represents reactions densely or sparsely; its own heuristic can pick the much
        slower one (dense on egfr_net: 100x slower).  Time both on a short run (about 50
        reactions, given ``per_time`` reactions per unit time, then 2,000 where that takes under
        a second) and keep the faster."""
        rates = {}
        for sparse in (True, False):
            ev, wall = self.run(50 / per_time, 1, sparse=sparse)
            rate = ev / wall if wall > 0 else math.inf
            if 2e3 / rate < 1.0:
                ev, wall = self.run(2e3 / per_time, 2, sparse=sparse)
                rate = ev / wall if wall > 0 else math.inf
            rates["sparse" if sparse else "dense"] = rate
        self.sparse = rates["sparse"] >= rates["dense"]
        return rates


# =============================================================================================
# Part 2: published networks


def _sb_run(
    method: SSA, problem: TimeCourse, seed: int, *, time_prepare: bool = True
) -> tuple[int, float, np.ndarray]:
    """One scalebridge run: (events, wall time of prepare + run_runs or of run_runs alone,
    output)."""
    t0 = time.perf_counter()
    prepared = method.prepare(problem)
    out = np.empty((1, problem.times.size, len(prepared.names)))
    states = stream_states(np.random.SeedSequence(seed).spawn(1))
    if not time_prepare:
        t0 = time.perf_counter()
    st = method.run_runs(prepared, states, out)
    return int(st["events"]), time.perf_counter() - t0, out[0]


def part_networks(args: argparse.Namespace, report: dict[str, Any]) -> list[Target]:
    mode = "quick" if args.quick else "full"
    scale = 0.1 if args.quick else 1.0
    log(f"== Part 2: published networks (one run each{', end times / 10' if args.quick else ''})")
    est, z = check_rebop_convention()
    ok = abs(z) < 5
    log(
        f"  rebop's convention, 2A -> B at rate 1 from A = 2: P(fired by t = 1) = {est:.3f} "
        f"(falling factorial x(x-1): {1 - math.exp(-2):.3f}, z = {z:+.1f}; halved: "
        f"{1 - math.exp(-1):.3f}) -> {'as scalebridge' if ok else 'DIFFERENT from scalebridge'}"
    )
    results: dict[str, Any] = {"rebop_convention": {"estimate": est, "z": z, "same": ok}}
    targets: list[Target] = []
    summary_rows = []
    for name, t_pub in NETWORK_T_END.items():
        t_run = t_pub * scale
        t0 = time.perf_counter()
        net = sb.load(NETWORKS_DIR / f"{name}.xml")
        load_s = time.perf_counter() - t0
        times_run = np.linspace(0.0, t_run, NETWORK_POINTS)
        t0 = time.perf_counter()
        prepared = SSA().prepare(TimeCourse(net, times_run))
        prep_s = time.perf_counter() - t0
        T = prepared.T
        log(
            f"\n  {name}: {T.n_species} species, {T.n_reactions} reactions "
            f"({len(prepared.sm.converted)} given the combinatorial form), to t = {t_run:g}; "
            f"load {load_s:.2f} s, first prepare {prep_s:.2f} s"
        )
        # Warm-up on a very short run (kernels loaded, the model compiled for each variant).
        for v in VARIANTS:
            _sb_run(SSA(variant=v), TimeCourse(net, np.linspace(0.0, t_run * 1e-4, 3)), 0)
        rec: dict[str, Any] = {
            "t_end": t_run,
            "t_published": t_pub,
            "load_s": load_s,
            "prepare_s": prep_s,
            "scalebridge": {},
        }
        # Each variant to a tenth of the run's end time; the faster one then to the end time.
        t_pilot = t_run / 10
        pilot = {}
        for v in VARIANTS:
            ev, wall, _ = _sb_run(SSA(variant=v), TimeCourse(net, np.linspace(0, t_pilot, 11)), 1)
            pilot[v] = (ev, wall)
            rec["scalebridge"][f"{v} to t={t_pilot:g}"] = {"events": ev, "wall_s": wall}
        best = max(VARIANTS, key=lambda v: pilot[v][0] / pilot[v][1])
        ev, wall, out = _sb_run(SSA(variant=best), TimeCourse(net, times_run), 2)
        rec["scalebridge"][f"{best} to t={t_run:g}"] = {"events": ev, "wall_s": wall}
        rec["best_variant"] = best
        rows = [
            [
                f"scalebridge {v}",
                f"{t_pilot:g}",
                pilot[v][0],
                f"{pilot[v][1]:.2f}",
                fmt(pilot[v][0] / pilot[v][1]),
            ]
            for v in VARIANTS
        ]
        rows.append([f"scalebridge {best}", f"{t_run:g}", ev, f"{wall:.2f}", fmt(ev / wall)])
        sb_rate, sb_events, sb_wall = ev / wall, ev, wall
        proj = t_pub / t_run  # quick mode: wall time to the published end time, projected
        sb_ms = sb_wall * 1e3 * proj
        log(f"  population at the end: {out[-1].sum():.0f} molecules")

        # rebop: check the conversion, pick its representation, run within the wall-time cap.
        reb_ms = math.nan
        try:
            rn = RebopNetwork(prepared)
            worst = check_conversion(prepared, rn.reactions, np.random.default_rng(7))
            per_time = sb_events / t_run
            reps = rn.choose_representation(per_time)
            rate_guess = max(reps.values())
            t_reb = min(t_run, REBOP_CAP_S[mode] * rate_guess / per_time)
            rev, rwall = rn.run(t_reb, 3)
            reb_rate = rev / rwall
            reb_ms = sb_events / reb_rate * 1e3 * proj
            rows.append(
                [
                    f"rebop ({'sparse' if rn.sparse else 'dense'})",
                    f"{t_reb:.3g}",
                    rev,
                    f"{rwall:.2f}",
                    fmt(reb_rate),
                ]
            )
            log(
                f"  rebop conversion: propensities equal scalebridge's to {worst:.1e} (relative, "
                f"{len(rn.reactions)} reactions, 51 states); representation: "
                + ", ".join(f"{k} {fmt(r)} events/s" for k, r in reps.items())
            )
            rec["rebop"] = {
                "t_end": t_reb,
                "events": rev,
                "wall_s": rwall,
                "events_per_s": reb_rate,
                "sparse": rn.sparse,
                "conversion_max_rel_diff": worst,
                "representations_events_per_s": reps,
                "projected_ms_to_t_published": reb_ms,
            }
        except Exception as e:
            log(f"  rebop: cannot run ({type(e).__name__}: {e})")
            rec["rebop"] = {"error": str(e)}
        log(table(["run", "to t", "events", "time s", "events/s"], rows))

        pub = PUBLISHED_SSA_MS[name]
        cat_best = min(v for k, v in pub.items() if k.startswith("Catalyst"))
        label = "" if t_run == t_pub else " (projected)"
        cmp_rows = [
            [f"scalebridge {best}{label}", fmt(sb_ms), f"{cat_best / sb_ms:.2f}"],
            [
                f"rebop, here{' (projected)' if not math.isnan(reb_ms) else ''}",
                fmt(reb_ms),
                f"{cat_best / reb_ms:.2f}",
            ],
        ]
        cmp_rows += [[f"{k} (published)", fmt(v), f"{cat_best / v:.2f}"] for k, v in pub.items()]
        log(f"  wall time of one run to t = {t_pub:g} (ms):")
        log(table(["tool", "ms", "Catalyst best / tool"], cmp_rows))
        rec["scalebridge_ms_to_t_published"] = sb_ms
        rec["scalebridge_events_per_s"] = sb_rate
        rec["published_ms"] = pub
        results[name] = rec
        summary_rows.append([name, best, fmt(sb_rate), fmt(sb_ms), fmt(reb_ms), fmt(cat_best)])
        suffix = " (quick, projected)" if args.quick else ""
        if name == "multistate":
            targets.append(
                Target(
                    f"ssa multistate events/s{suffix}",
                    sb_rate,
                    "events/s",
                    ">=",
                    MULTISTATE_EVENTS_GOAL,
                )
            )
        else:
            targets.append(
                Target(
                    f"ssa {name} wall time vs Catalyst best published{suffix}",
                    sb_ms,
                    "ms",
                    "<",
                    cat_best,
                )
            )
    log("")
    log(
        table(
            ["network", "variant", "events/s", "scalebridge ms", "rebop ms", "Catalyst best ms"],
            summary_rows,
        )
    )
    report["networks"] = results
    return targets


# =============================================================================================
# Part 3: network size


def _settled_state(net: ReactionNetwork, t: float) -> tuple[dict[str, float], float]:
    """The counts after a burn-in of ``t`` (one composition-rejection run), and the reactions
    per unit time during it."""
    problem = TimeCourse(net, np.array([0.0, t]))
    events, _, out = _sb_run(SSA(variant="composition-rejection"), problem, 99)
    return {s.id: float(c) for s, c in zip(net.species, out[-1], strict=True)}, events / t


def _timed_length(
    run: Callable[[float], tuple[int, float]], target_s: float, t_start: float
) -> float:
    """A run length (model time) that takes about ``target_s`` of wall time, from runs of
    ``t_start`` (after one untimed: kernels load on first use), 4x longer until one takes
    0.05 s."""
    t = t_start
    run(t)
    while True:
        _, wall = run(t)
        if wall >= 0.05 or t > 1e6:
            return t * target_s / max(wall, 1e-9)
        t *= 4


def _size_tool(
    net: ReactionNetwork,
    values: dict[str, float],
    per_time: float,
    tool: str,
    repeats: int,
    run_s: float,
) -> dict[str, Any]:
    """Events/s of ``tool`` (an SSA variant or ``"rebop"``) on ``net`` from the state
    ``values`` (``per_time`` reactions per unit time): a run length that takes about ``run_s``,
    then ``repeats`` runs."""

    def problem(t: float) -> TimeCourse:
        return TimeCourse(net, np.linspace(0.0, t, 11), values=values)

    pops: list[np.ndarray] = []
    entry: dict[str, Any] = {}
    if tool == "rebop":
        rn = RebopNetwork(SSA().prepare(problem(1.0)))
        entry["representations_events_per_s"] = rn.choose_representation(per_time)

        def run(t: float, seed: int = 0) -> tuple[int, float]:
            return rn.run(t, seed)
    else:
        method = SSA(variant=tool)
        entry["dependents"] = float(np.diff(method.prepare(problem(1.0)).T.dep_ptr).mean())

        def run(t: float, seed: int = 0) -> tuple[int, float]:
            ev, wall, out = _sb_run(method, problem(t), seed, time_prepare=False)
            if seed:
                pops.append(out.sum(axis=1) / len(net.species))
            return ev, wall

    t_len = _timed_length(run, run_s, 1e3 / per_time)
    rates = []
    for r in range(repeats):
        ev, wall = run(t_len, 10 + r)
        rates.append(ev / wall)
    entry.update(t_end=t_len, events_per_s=statistics.median(rates), all=rates)
    if pops:
        pp = np.concatenate(pops)
        entry["mean_count_per_species"] = float(pp.mean())
        entry["count_per_species_range"] = [float(pp.min()), float(pp.max())]
    return entry


def part_size(args: argparse.Namespace, report: dict[str, Any]) -> list[Target]:
    mode = "quick" if args.quick else "full"
    repeats, run_s = SIZE_REPEATS[mode], SIZE_RUN_S[mode]
    log(
        f"== Part 3: network size, random sparse mass-action networks (benchmarks/gen_networks.py,"
        f" seed {SIZE_SEED}), runs of about {run_s:g} s, median of {repeats}"
    )
    rows, res = [], {}
    tools = (*VARIANTS, "rebop")
    for n_r in SIZES:
        t0 = time.perf_counter()
        net = random_network(n_r, seed=SIZE_SEED)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        values, per_time = _settled_state(net, SIZE_BURN_IN)
        burn_s = time.perf_counter() - t0
        entry: dict[str, Any] = {
            "species": len(net.species),
            "build_s": build_s,
            "burn_in_s": burn_s,
        }
        for tool in tools:
            try:
                entry[tool] = _size_tool(net, values, per_time, tool, repeats, run_s)
            except Exception as e:
                log(f"  {tool} on {n_r} reactions: failed ({type(e).__name__}: {e})")
                entry[tool] = {"error": str(e), "events_per_s": math.nan}
        cr = entry["composition-rejection"]
        pop = cr.get("mean_count_per_species", math.nan)
        lo, hi = cr.get("count_per_species_range", [math.nan, math.nan])
        row = [
            n_r,
            len(net.species),
            f"{cr.get('dependents', math.nan):.1f}",
            f"{pop:.1f} ({lo:.1f}-{hi:.1f})",
        ]
        row += [fmt(entry[t]["events_per_s"]) for t in tools]
        rows.append(row)
        log(
            f"  {n_r} reactions: built in {build_s:.2f} s, burn-in {burn_s:.2f} s, measured in "
            f"{time.perf_counter() - t0:.1f} s; load {loadavg()}"
        )
        res[n_r] = entry
    headers = ["reactions", "species", "dependents", "molecules/species mean (range)"]
    log(table(headers + [f"{short(t)} ev/s" for t in tools], rows))
    log(
        "  dependents: mean number of propensities a reaction changes (the dependency graph); "
        "molecules/species: mean over the composition-rejection runs' output times (range of "
        "the per-time means)"
    )
    keep = {}
    for t in VARIANTS:
        r = [res[n][t]["events_per_s"] for n in (SIZES[0], SIZES[-1])]
        keep[t] = r[1] / r[0]
    log(
        f"  rate at {SIZES[-1]} reactions / rate at {SIZES[0]}: "
        + ", ".join(f"{t} {k:.2f}" for t, k in keep.items())
    )
    report["size"] = {str(k): v for k, v in res.items()}
    report["size_rate_kept"] = keep
    # The goal is for the variants built for large networks (all but the direct method).
    return [
        Target(
            f"ssa size {t} rate at {SIZES[-1]} / at {SIZES[0]} reactions",
            keep[t],
            "x",
            ">=",
            SIZE_RATIO_GOAL,
        )
        for t in VARIANTS
        if t != "direct"
    ]


# =============================================================================================


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="fewer runs and shorter network runs (a few minutes)"
    )
    ap.add_argument(
        "--part",
        choices=("gene", "networks", "size"),
        action="append",
        help="run only this part (may be repeated)",
    )
    ap.add_argument("--json", metavar="FILE", help="write every figure and the targets as JSON")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="gene model: interleaved rounds of runs (default 4, quick 2)",
    )
    ap.add_argument("--floor", default=str(FLOOR_SOURCE), help="path of ssa_floor.c")
    args = ap.parse_args(argv)
    parts = args.part or ["gene", "networks", "size"]
    env = environment(PACKAGES)
    log(
        f"scalebridge SSA benchmark ({'quick' if args.quick else 'full'}); "
        f"{env['platform']}, {env['cpus']} cpus; load {loadavg()}"
    )
    log("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    report: dict[str, Any] = {"environment": env, "quick": args.quick}
    targets: list[Target] = []
    t0 = time.perf_counter()
    for part in ("gene", "networks", "size"):
        if part in parts:
            t1 = time.perf_counter()
            targets += {"gene": part_gene, "networks": part_networks, "size": part_size}[part](
                args, report
            )
            log(f"  ({part}: {time.perf_counter() - t1:.0f} s)\n")
    report["wall_s"] = time.perf_counter() - t0
    report["load_average_end"] = loadavg()
    log(f"total {report['wall_s']:.0f} s; load {loadavg()}")
    for t in targets:
        log(t.line())
    report["targets"] = [t.as_dict() for t in targets]
    if args.json:
        save_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
