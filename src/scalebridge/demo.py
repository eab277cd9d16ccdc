"""Built-in demos: ``scalebridge demo [NAME] [--out DIR]``.

A demo is a function ``run(out: Path) -> DemoReport`` registered in :data:`DEMOS` under its name;
it loads a model shipped in ``scalebridge/data`` through the public :func:`scalebridge.api.load`,
simulates it through :func:`scalebridge.api.simulate`, and writes everything it shows into
``out``: results (CSV and NetCDF), figures (PNG) and ``summary.md``, whose numbers are computed
by the run, never typed in.  :func:`run_demo` looks a demo up by name and prepares the directory.

``gene-feedback`` (the default)
    Gene expression with negative feedback (an autorepressor), ``data/gene_feedback.ant``::

        dM/dt = k_m / (1 + (P/K)^n) - g_m M        mRNA
        dP/dt = k_p M - g_p P                      protein, represses its own transcription

    It is simulated from M = P = 0 as written, and without feedback (K -> infinity, set through
    ``params=``), whose steady state is M* = k_m/g_m, P* = k_p M*/g_p.  With feedback the steady
    state P* solves the fixed-point equation P* = (k_p/g_p)(k_m/g_m) / (1 + (P*/K)^n).  The demo
    reports both steady states, how much the feedback lowers P*, the overshoot of P above its
    steady state (the linearisation has complex eigenvalues, so the approach is a damped
    oscillation) and the response time t_1/2 (first time P reaches half its steady state), which
    negative autoregulation shortens (Rosenfeld, Elowitz & Alon, J. Mol. Biol. 323:785, 2002).  A
    sweep over K shows the steady-state protein against the feedback strength s = P0*/K, the
    factor by which the unregulated protein level P0* exceeds the repression threshold.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import atomic_path, atomic_write_text
from .errors import OptionError

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from .model.network import ReactionNetwork
    from .results import Result

__all__ = [
    "DEFAULT_DEMO",
    "DEMOS",
    "DEMO_DESCRIPTIONS",
    "DemoReport",
    "data_file",
    "run_demo",
    "run_gene_feedback",
]

DEFAULT_DEMO = "gene-feedback"


@dataclass(frozen=True)
class DemoReport:
    """What a demo did: its ``name``, the ``directory`` it wrote to, the ``files`` it wrote (in
    order) and ``values``, the headline numbers of the run (the same numbers as in
    ``summary.md``)."""

    name: str
    directory: Path
    files: tuple[Path, ...]
    values: Mapping[str, float] = field(default_factory=dict)


@contextmanager
def data_file(name: str) -> Iterator[Path]:
    """A real file-system path to the package data file ``name`` (``scalebridge/data/name``)."""
    ref = resources.files("scalebridge").joinpath("data", name)
    if not ref.is_file():
        raise OptionError(f"the package data file '{name}' is missing; reinstall scalebridge")
    with resources.as_file(ref) as path:
        yield path


def run_demo(name: str = DEFAULT_DEMO, out: str | os.PathLike[str] = "out") -> DemoReport:
    """Run the demo called ``name``, writing into directory ``out`` (created if missing;
    files of the same names in it are replaced)."""
    run = DEMOS.get(name)
    if run is None:
        raise OptionError(f"unknown demo '{name}'; demos are: {', '.join(DEMOS)}")
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise OptionError(f"--out {directory}: exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(
            f"--out {directory}: cannot create the directory ({e.strerror})"
        ) from None
    return run(directory)


# ==================================================================================================
# gene-feedback
# ==================================================================================================
GENE_FEEDBACK_MODEL = "gene_feedback.ant"
# "No feedback" is K -> infinity.  With K = 1e30 the repression term (P/K)^n is below 1e-100 for
# any protein level this model reaches, so 1 + (P/K)^n == 1 in double precision: the rate is
# k_m to the last bit, without changing the model's structure.
K_NO_FEEDBACK = 1e30
TRAJECTORY_POINTS = 1501
# Trajectories run for 7.5 lifetimes of the slowest species, steady states for 100 (so that
# transients, decaying at least like exp(-g t), have died out to far below the tolerances).
TRAJECTORY_LIFETIMES = 7.5
STEADY_LIFETIMES = 100.0
SWEEP_STRENGTHS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
STEADY_RTOL = 1e-10


def _first_crossing(t: np.ndarray, x: np.ndarray, level: float) -> float:
    """First time the sampled, rising curve ``x(t)`` reaches ``level`` (linear interpolation)."""
    import numpy as np

    above = np.nonzero(x >= level)[0]
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(t[0])
    return float(t[i - 1] + (level - x[i - 1]) * (t[i] - t[i - 1]) / (x[i] - x[i - 1]))


def _steady_state(net: ReactionNetwork, values: Mapping[str, float], t_end: float) -> Result:
    """Simulate to ``t_end`` with outputs at 0, t_end/2, t_end: the last point is the steady
    state, the change over the second half measures how settled it is."""
    from .api import simulate

    return simulate(
        net, "ode", times=[0.0, t_end / 2, t_end], params=dict(values), rtol=STEADY_RTOL
    )


def _drift(res: Result, name: str) -> float:
    x = res[name].to_numpy()
    return float(abs(x[-1] - x[-2]) / abs(x[-1])) if x[-1] != 0 else float(abs(x[-1] - x[-2]))


def _new_figure(**kwargs: Any) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def _fmt(x: float, digits: int = 6) -> str:
    return f"{x:.{digits}g}"


def run_gene_feedback(out: Path) -> DemoReport:
    """The autorepressor demo (see the module docstring); writes into ``out``:

    ``model.ant`` (the model), ``feedback.csv``/``.nc`` and ``no_feedback.csv``/``.nc``
    (trajectories of M and P), ``sweep.csv`` (steady state against feedback strength),
    ``trajectories.png``, ``sweep.png`` and ``summary.md``.
    """
    import numpy as np
    import pandas as pd

    from .api import load, simulate
    from .model.describe import describe_text

    wall_start = time.perf_counter()
    out = Path(out)
    written: list[Path] = []

    with data_file(GENE_FEEDBACK_MODEL) as path:
        model_text = path.read_text(encoding="utf-8")
        net = load(path)
    par: dict[str, float] = {}
    for p in net.parameters:
        if p.value is None:
            raise OptionError(f"{GENE_FEEDBACK_MODEL}: parameter '{p.id}' has no value")
        par[p.id] = float(p.value)
    k_m, g_m, k_p, g_p, K, n = (par[k] for k in ("k_m", "g_m", "k_p", "g_p", "K", "n"))
    slowest = 1.0 / min(g_m, g_p)
    t_traj = TRAJECTORY_LIFETIMES * slowest
    t_steady = STEADY_LIFETIMES * slowest
    no_feedback = {"K": K_NO_FEEDBACK}

    # -- trajectories from M = P = 0
    fb = simulate(net, "ode", t_end=t_traj, n_points=TRAJECTORY_POINTS)
    nofb = simulate(net, "ode", t_end=t_traj, n_points=TRAJECTORY_POINTS, params=no_feedback)

    # -- steady states, and the sweep over the repression threshold
    ss_fb = _steady_state(net, {}, t_steady)
    ss_nofb = _steady_state(net, no_feedback, t_steady)
    M0 = float(ss_nofb["M"].to_numpy()[-1])
    P0 = float(ss_nofb["P"].to_numpy()[-1])
    M1 = float(ss_fb["M"].to_numpy()[-1])
    P1 = float(ss_fb["P"].to_numpy()[-1])
    sweep_rows = []
    sweep_steps = 0
    sweep_wall = 0.0
    for s in SWEEP_STRENGTHS:
        K_s = P0 / s
        r = _steady_state(net, {"K": K_s}, t_steady)
        sweep_steps += int(r.stats.get("steps", 0))
        sweep_wall += float(r.stats.get("wall_time_s") or 0.0)
        sweep_rows.append(
            {
                "strength": s,
                "K": K_s,
                "M_star": float(r["M"].to_numpy()[-1]),
                "P_star": float(r["P"].to_numpy()[-1]),
                "drift": max(_drift(r, "M"), _drift(r, "P")),
            }
        )
    sweep = pd.DataFrame(sweep_rows)

    # -- the feedback effect, measured on the trajectories
    t = fb.time
    P_fb = fb["P"].to_numpy()
    P_nofb = nofb["P"].to_numpy()
    i_peak = int(np.argmax(P_fb))
    overshoot = float(P_fb[i_peak] / P1 - 1.0)
    undershoot = float(1.0 - P_fb[i_peak:].min() / P1)
    t_half_fb = _first_crossing(t, P_fb, P1 / 2)
    t_half_nofb = _first_crossing(t, P_nofb, P0 / 2)
    analytic_M0 = k_m / g_m
    analytic_P0 = k_p * analytic_M0 / g_p

    # -- files: model, trajectories, sweep
    model_copy = out / "model.ant"
    atomic_write_text(model_copy, model_text)
    written.append(model_copy)
    for stem, res in (("feedback", fb), ("no_feedback", nofb)):
        for suffix, write in ((".csv", res.to_csv), (".nc", res.to_netcdf)):
            target = out / f"{stem}{suffix}"
            write(target)
            written.append(target)
    sweep_path = out / "sweep.csv"
    with atomic_path(sweep_path) as tmp:
        sweep.to_csv(tmp, index=False, lineterminator="\n")
    written.append(sweep_path)

    # -- figures
    fig = _new_figure(figsize=(9.0, 3.8))
    axes = fig.subplots(1, 2, sharex=True)
    for ax, name, label, ss1, ss0 in (
        (axes[0], "M", "mRNA M", M1, M0),
        (axes[1], "P", "protein P", P1, P0),
    ):
        label_fb = f"feedback (K = {_fmt(K, 3)}, n = {_fmt(n, 3)})"
        (line,) = ax.plot(t, fb[name].to_numpy(), label=label_fb)
        ax.plot(t, nofb[name].to_numpy(), "--", label="no feedback (K → ∞)")
        ax.axhline(ss1, color=line.get_color(), linestyle=":", linewidth=0.8)
        ax.axhline(ss0, color="0.4", linestyle=":", linewidth=0.8)
        ax.set_xlabel("time (min)")
        ax.set_ylabel(f"{label} (molecules per cell)")
        ax.set_title(label)
    axes[1].plot([t[i_peak]], [P_fb[i_peak]], "o", color="C0", markersize=4)
    axes[1].annotate(
        f"overshoot {100 * overshoot:.0f}%", (t[i_peak], P_fb[i_peak]),
        textcoords="offset points", xytext=(8, 8), fontsize="small",
    )  # fmt: skip
    axes[0].legend(fontsize="small", loc="lower right")
    fig.suptitle("Gene expression with negative feedback (dotted: steady states)")
    traj_png = out / "trajectories.png"
    _save_figure(fig, traj_png)
    written.append(traj_png)

    fig = _new_figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    ax.loglog(sweep["strength"], sweep["P_star"], "o-", label="with feedback")
    ax.axhline(P0, color="0.4", linestyle="--", label=f"no feedback, P0* = {_fmt(P0, 4)}")
    ax.plot([P0 / K], [P1], "s", color="C3", label=f"the model (K = {_fmt(K, 3)})")
    ax.set_xlabel("feedback strength s = P0*/K")
    ax.set_ylabel("steady-state protein P* (molecules per cell)")
    ax.set_title(f"Steady-state protein against feedback strength (n = {_fmt(n, 3)})")
    ax.legend(fontsize="small")
    sweep_png = out / "sweep.png"
    _save_figure(fig, sweep_png)
    written.append(sweep_png)

    # -- summary
    values: dict[str, float] = {
        "M_star_feedback": M1,
        "P_star_feedback": P1,
        "M_star_no_feedback": M0,
        "P_star_no_feedback": P0,
        "reduction": P0 / P1,
        "overshoot": overshoot,
        "undershoot": undershoot,
        "monotone_no_feedback": float(bool(np.all(np.diff(P_nofb) >= 0))),
        "t_peak": float(t[i_peak]),
        "t_half_feedback": t_half_fb,
        "t_half_no_feedback": t_half_nofb,
        "speedup": t_half_nofb / t_half_fb,
    }
    # -- Newton's method on the rate equations, and the linearisation there
    from .wellmixed.steady import steady_state

    newton = steady_state(net)
    lead = max(newton.eigenvalues, key=lambda z: z.real)
    values["newton_P_star"] = newton.values["P"]
    values["newton_agreement"] = abs(newton.values["P"] / P1 - 1.0)
    values["eig_real"] = float(lead.real)
    values["eig_imag"] = float(abs(lead.imag))
    values["stable"] = float(newton.stable)
    runs = [
        ("trajectory, feedback", fb.stats),
        ("trajectory, no feedback", nofb.stats),
        ("steady state, feedback", ss_fb.stats),
        ("steady state, no feedback", ss_nofb.stats),
    ]
    summary_path = out / "summary.md"
    values["wall_time_s"] = time.perf_counter() - wall_start
    text = _gene_feedback_summary(
        model_text=model_text, par=par, values=values, sweep=sweep,
        drifts={"feedback": max(_drift(ss_fb, "M"), _drift(ss_fb, "P")),
                "no feedback": max(_drift(ss_nofb, "M"), _drift(ss_nofb, "P"))},
        analytic=(analytic_M0, analytic_P0), t_traj=t_traj, t_steady=t_steady, runs=runs,
        sweep_stats=(len(sweep_rows), sweep_steps, sweep_wall),
        files=[*written, summary_path], describe=describe_text(net),
    )  # fmt: skip
    atomic_write_text(summary_path, text)
    written.append(summary_path)
    return DemoReport("gene-feedback", out, tuple(written), values)


def _stability_text(v: Mapping[str, float]) -> str:
    """Newton's steady state and the linearisation there, as this run found them."""
    text = (
        "Newton's method on the rate equations (`scalebridge.steady_state`) gives "
        f"P* = {_fmt(v['newton_P_star'])} with feedback, {v['newton_agreement']:.1e} (relative) "
        f"from the simulation; it is {'stable' if v['stable'] else 'unstable'}. "
    )
    if v["eig_imag"] > 0:
        text += (
            f"The Jacobian there has eigenvalues {_fmt(v['eig_real'], 4)} ± "
            f"{_fmt(v['eig_imag'], 4)}i: a damped oscillation with period "
            f"2π/{_fmt(v['eig_imag'], 4)} = {_fmt(2 * math.pi / v['eig_imag'], 3)} min that "
            f"decays with time constant {_fmt(1 / abs(v['eig_real']), 3)} min: the overshoot "
            "below."
        )
    else:
        text += (
            f"The Jacobian's eigenvalues there are real (slowest {_fmt(v['eig_real'], 4)}): "
            "no oscillation."
        )
    return text


def _overshoot_text(v: Mapping[str, float]) -> str:
    """The overshoot sentence, stating only what the numbers of this run show."""
    if v["overshoot"] > 0:
        fb = (
            f"with feedback P peaks at t = {_fmt(v['t_peak'], 4)} min, "
            f"{100 * v['overshoot']:.1f}% above its steady state"
        )
        if v["undershoot"] > 0:
            fb += f", then falls {100 * v['undershoot']:.1f}% below it: a damped oscillation"
    else:
        fb = "with feedback P rises to its steady state without overshooting it"
    nofb = (
        "without feedback it rises monotonically"
        if v["monotone_no_feedback"]
        else "without feedback it is not monotonic"
    )
    return f"- **Overshoot**: {fb}; {nofb}."


def _gene_feedback_summary(
    *,
    model_text: str,
    par: Mapping[str, float],
    values: Mapping[str, float],
    sweep: Any,
    drifts: Mapping[str, float],
    analytic: tuple[float, float],
    t_traj: float,
    t_steady: float,
    runs: Sequence[tuple[str, Mapping[str, Any]]],
    sweep_stats: tuple[int, int, float],
    files: list[Path],
    describe: str,
) -> str:
    v = values
    M0a, P0a = analytic
    lines = [
        "# Demo: gene expression with negative feedback (autorepressor)",
        "",
        "A gene is transcribed into mRNA M and translated into protein P; P represses the",
        "transcription of its own gene:",
        "",
        "    dM/dt = k_m / (1 + (P/K)^n) - g_m*M",
        "    dP/dt = k_p*M - g_p*P",
        "",
        f"Model `{GENE_FEEDBACK_MODEL}` (copied here as `model.ant`), loaded with "
        "`scalebridge.load` and simulated with method `ode` from M = P = 0. "
        f'"No feedback" is the same model with K = {K_NO_FEEDBACK:g} (K → ∞), '
        "set with `params=`.",
        "Time is in minutes, M and P in molecules per cell.",
        "",
        "| parameter | value |",
        "|---|---|",
        *(f"| {k} | {_fmt(x)} |" for k, x in par.items()),
        "",
        "## Steady states",
        "",
        f"Simulated to t = {_fmt(t_steady)} min (rtol {STEADY_RTOL:g}); *drift* is the largest "
        f"relative change of M or P between t = {_fmt(t_steady / 2)} and t = {_fmt(t_steady)}.",
        "",
        "| | M* | P* | drift |",
        "|---|---|---|---|",
        f"| feedback (K = {_fmt(par['K'])}) | {_fmt(v['M_star_feedback'])} | "
        f"{_fmt(v['P_star_feedback'])} | {drifts['feedback']:.1e} |",
        f"| no feedback | {_fmt(v['M_star_no_feedback'])} | {_fmt(v['P_star_no_feedback'])} | "
        f"{drifts['no feedback']:.1e} |",
        "",
        f"Without feedback the steady state is M* = k_m/g_m = {_fmt(M0a)} and "
        f"P* = k_p M*/g_p = {_fmt(P0a)}; the simulation differs by "
        f"{abs(v['M_star_no_feedback'] / M0a - 1):.1e} and "
        f"{abs(v['P_star_no_feedback'] / P0a - 1):.1e} (relative).",
        "",
        _stability_text(v),
        "",
        "## The feedback effect",
        "",
        "- **Lower level**: the feedback holds the protein at "
        f"P* = {_fmt(v['P_star_feedback'], 4)} instead of {_fmt(v['P_star_no_feedback'], 4)}, "
        f"{_fmt(v['reduction'], 3)} times less.",
        _overshoot_text(v),
        f"- **Faster response**: P reaches half its steady state after "
        f"t½ = {_fmt(v['t_half_feedback'], 3)} min with feedback and "
        f"{_fmt(v['t_half_no_feedback'], 3)} min without, {_fmt(v['speedup'], 3)} times faster.",
        "",
        f"Values on the output grid of the trajectories (t = 0 … {_fmt(t_traj)} min, "
        f"{TRAJECTORY_POINTS} points); t½ by linear interpolation.",
        "",
        "### Steady state against feedback strength",
        "",
        "s = P0*/K: how far the unregulated protein level would exceed the repression threshold.",
        "",
        "| s | K | M* | P* | drift |",
        "|---|---|---|---|---|",
        *(
            f"| {_fmt(row.strength)} | {_fmt(row.K)} | {_fmt(row.M_star)} | {_fmt(row.P_star)} "
            f"| {row.drift:.1e} |"
            for row in sweep.itertuples()
        ),
        "",
        "## Run statistics",
        "",
        "| run | steps | right-hand sides | wall time (s) |",
        "|---|---|---|---|",
        *(
            f"| {label} | {st.get('steps', '')} | {st.get('rhs_evaluations', '')} | "
            f"{float(st.get('wall_time_s') or 0.0):.4f} |"
            for label, st in runs
        ),
        f"| sweep ({sweep_stats[0]} steady states) | {sweep_stats[1]} | | {sweep_stats[2]:.4f} |",
        "",
        f"The whole demo (loading, runs, files, figures) took {v['wall_time_s']:.2f} s.",
        "",
        "## Files",
        "",
        *(f"- `{p.name}`" for p in files),
        "",
        "Reproduce a trajectory from the command line:",
        "",
        f"    scalebridge simulate model.ant --t-end {_fmt(t_traj)} --n-points {TRAJECTORY_POINTS} "
        "--out feedback.csv",
        f"    scalebridge simulate model.ant --t-end {_fmt(t_traj)} --n-points {TRAJECTORY_POINTS} "
        f"--param K={K_NO_FEEDBACK:g} --out no_feedback.csv",
        "",
        "## The model as scalebridge reads it",
        "",
        "```text",
        describe.rstrip("\n"),
        "```",
        "",
        "Source:",
        "",
        "```antimony",
        model_text.rstrip("\n"),
        "```",
        "",
    ]
    return "\n".join(lines)


DemoFunction = Callable[[Path], DemoReport]


#: Named demos; each writes its files into the directory it is given.
def _run_gene_noise(out: Path) -> DemoReport:
    from .scenarios.gene_noise import run_gene_noise

    return run_gene_noise(out)


def _run_morphogen(out: Path) -> DemoReport:
    from .scenarios.morphogen import run_morphogen

    return run_morphogen(out)


def _run_binding(out: Path) -> DemoReport:
    from .scenarios.binding import run_binding

    return run_binding(out)


DEMOS: dict[str, DemoFunction] = {
    "gene-feedback": run_gene_feedback,
    "gene-noise": _run_gene_noise,
    "morphogen": _run_morphogen,
    "binding": _run_binding,
}

#: One line per demo, for ``scalebridge demo --help``.
DEMO_DESCRIPTIONS: dict[str, str] = {
    "gene-feedback": "an autorepressor gene: steady states, overshoot, response time, "
    "feedback-strength sweep",
    "gene-noise": "one gene through FSP, SSA, CLE, LNA and ODE; a phenotype's noise; tissue "
    "averages against the number of cells, with N*",
    "morphogen": "a morphogen gradient bottom-up (receptor QSSA law, homogenized D_eff, tissue "
    "PDE, timescales), checked against receptors resolved in every grid cell",
    "binding": "which data pin down receptor binding: equilibrium vs kinetic, cell-scale readout "
    "vs a molecular assay (structural test, FIM rank, profiles, suggested measurements)",
}
