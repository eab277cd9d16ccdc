"""The ``morphogen`` demo: a tissue gradient derived bottom-up, stage by stage, and checked.

The scenario ``data/morphogen.yaml`` describes a morphogen L held at the source x = 0 that
diffuses through a tissue and is bound, in every grid cell, by surface receptors that
internalize it (the *resolved* model: receptor complexes C per grid cell, R = R_T - C).  The
demo reads its numbers -- kinetics, receptor number, cell density, microstructure, grid,
source -- and builds the hierarchical pipeline (:class:`scalebridge.couple.HierarchicalPipeline`)
from them:

1. the per-cell receptor network (``data/receptor_uptake.ant`` with the scenario's constants),
   reduced by QSSA with the ligand held at the local concentration: the uptake law
   ``u(L) = V_max L/(K_m + L)``, ``V_max = k_int R_T``, ``K_m = (k_off + k_int)/k_on``;
2. ``D_eff`` from the periodic cell problem on the scenario's unit cell;
3. the tissue sink ``q = rho u(L)``, the tissue PDE and its steady gradient (Newton);
4. the timescales ``t_molecular``, ``t_capture``, ``t_cell``, ``t_diffusion`` and whether they
   are separated (ratio 10).

It then runs the resolved scenario itself (:func:`scalebridge.space.scenario.run_scenario`) and
compares: the steady gradients must agree to round-off (at a steady state the receptors are on
their quasi-steady manifold), and while the gradient forms they differ by O(t_molecular /
t_capture).  Every stage is drawn (``molecular.png``, ``microstructure.png``, ``gradient.png``,
``formation.png``, ``timescales.png``) and every number in ``summary.md`` is computed by the run.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..couple.pipeline import HierarchicalPipeline
    from ..demo import DemoReport
    from ..results import Result

SCENARIO = "morphogen.yaml"
NETWORK = "receptor_uptake.ant"
LIGAND = "L"
MOLECULAR_CONSTANTS = ("k_on", "k_off", "k_int", "R_T")
DENSITY = "rho"
# single-cell relaxation runs: ligand levels (in units of K_m) and length (in t_molecular)
CELL_LEVELS = (0.25, 1.0, 4.0)
CELL_SPAN = 8.0
LAW_POINTS = 200


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.{digits}g}"


def build_pipeline(scenario: Any) -> HierarchicalPipeline:
    """The hierarchical pipeline with the numbers of the resolved ``scenario``."""
    from ..couple.pipeline import HierarchicalPipeline
    from ..reduce.qssa import receptor_uptake

    p = scenario.model.parameter_values
    spec = scenario.spec
    lig = spec["species"][LIGAND]
    boundary = dict(spec.get("boundary", {}))
    boundary.update(lig.get("boundary", {}))
    return HierarchicalPipeline(
        scenario.model.grid,
        cell_density=float(p[DENSITY]),
        boundary=boundary,
        network=receptor_uptake(),
        values={k: float(p[k]) for k in MOLECULAR_CONSTANTS},
        ligand=LIGAND,
        fast=("C", "R"),
        microstructure=lig["diffusivity"]["homogenize"],
        source=SCENARIO,
    )


def run_morphogen(out: Path) -> DemoReport:
    """The demo (module docstring); writes into ``out``: ``morphogen.yaml``, the pipeline's
    stages (``pipeline.json``, ``molecular_network.xml``, ``reduced_network.xml``,
    ``microstructure.nc``, ``gradient.nc``), the gradient's formation by the pipeline
    (``formation.nc``), the resolved run (``resolved/``: fields, steady state, figures), five
    figures and ``summary.md``."""
    from .._io import atomic_write_text
    from ..api import simulate
    from ..couple.pipeline import TimescaleWarning
    from ..demo import DemoReport, data_file
    from ..space.scenario import load_scenario, run_scenario

    wall0 = time.perf_counter()
    out = Path(out)
    written: list[Path] = []
    with data_file(SCENARIO) as path:
        scenario_text = path.read_text(encoding="utf-8")
        sc = load_scenario(path)
        # the resolved model, as `scalebridge run morphogen.yaml` runs it
        t0 = time.perf_counter()
        resolved = run_scenario(path, out / "resolved", progress=False)
        t_resolved = time.perf_counter() - t0
    copy = out / SCENARIO
    atomic_write_text(copy, scenario_text)
    written.append(copy)
    written += list(resolved.files)

    # -- the pipeline, stage by stage
    t0 = time.perf_counter()
    pipe = build_pipeline(sc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TimescaleWarning)
        pipe.run()
    pipeline_warnings = [str(w.message) for w in caught if issubclass(w.category, TimescaleWarning)]
    t_pipeline = time.perf_counter() - t0
    mol = pipe.molecular
    assert mol is not None
    law = pipe.uptake
    ts = pipe.timescales
    grad = pipe.gradient
    assert sc.times is not None and resolved.result is not None and resolved.steady is not None
    t0 = time.perf_counter()
    dt = float(sc.spec["solver"]["dt"])
    formation = pipe.transient(times=list(sc.times), method="crank-nicolson", dt=dt)
    t_formation = time.perf_counter() - t0
    written += pipe.save(out)
    target = out / "formation.nc"
    formation.to_netcdf(target)
    written.append(target)

    # -- hierarchical against resolved
    p = sc.model.parameter_values
    c_pipe = grad.values
    c_res = resolved.steady.values(LIGAND)
    steady_diff = float(np.max(np.abs(c_res - c_pipe) / np.abs(c_res)))
    c0 = float(np.max(c_pipe))
    form_err = [
        float(
            np.max(
                np.abs(formation.data[LIGAND].values[i] - resolved.result.data[LIGAND].values[i])
            )
        )
        for i in range(sc.times.size)
    ]
    C_res = resolved.steady.values("C")
    C_qss = mol.receptor_states(c_pipe)["C"]
    occupancy_diff = float(np.max(np.abs(C_res - C_qss)) / float(p["R_T"]))

    # -- single cells at clamped ligand: the receptors relax onto the manifold
    cells = _single_cells(mol, law, simulate)

    # -- figures
    for name, fig in (
        ("molecular.png", _molecular_figure(mol, law, cells)),
        ("microstructure.png", _microstructure_figure(pipe)),
        ("gradient.png", _gradient_figure(pipe, resolved.steady, float(p["R_T"]))),
        ("formation.png", _formation_figure(sc.times, formation, resolved.result, form_err)),
        ("timescales.png", _timescales_figure(ts)),
    ):
        from ..demo import _save_figure

        target = out / name
        _save_figure(fig, target)
        written.append(target)

    hom = pipe.diffusivity.homogenization
    assert hom is not None
    from ..space.homogenize import hashin_shtrikman_bounds

    vf = hom.volume_fractions or {}
    D_lo_hi = sorted(vf)
    hs = (
        hashin_shtrikman_bounds(D_lo_hi[0], D_lo_hi[-1], vf[D_lo_hi[0]], dim=hom.dim)
        if len(D_lo_hi) == 2
        else (math.nan, math.nan)
    )
    values: dict[str, float] = {
        "V_max": float(law.V_max if law.V_max is not None else math.nan),
        "K_m": float(law.K_m if law.K_m is not None else math.nan),
        "D_eff": pipe.diffusivity.value,
        "D_eff_hs_lower": float(hs[0]),
        "D_eff_hs_upper": float(hs[1]),
        "t_molecular": float(ts.t_molecular or math.nan),
        "t_capture": float(ts.t_capture or math.nan),
        "t_cell": ts.t_cell,
        "t_diffusion": ts.t_diffusion,
        "ratio_cell_molecular": float(ts.ratios["cell/molecular"] or math.nan),
        "ratio_tissue_cell": float(ts.ratios["tissue/cell"] or math.nan),
        "separated": float(ts.separated),
        "source_level": float(c_pipe[0]),
        "far_level": float(c_pipe[-1]),
        "decay_length": float(grad.decay_length if grad.decay_length is not None else math.nan),
        "total_uptake": grad.total_uptake,
        "boundary_influx": grad.boundary_influx,
        "mass_balance": abs(grad.boundary_influx - grad.total_uptake) / grad.total_uptake,
        "steady_difference": steady_diff,
        "occupancy_difference": occupancy_diff,
        "formation_error_max": max(form_err) / c0,
        "cell_relaxation_error": max(c["final_error"] for c in cells),
        "wall_time_pipeline_s": t_pipeline,
        "wall_time_formation_s": t_formation,
        "wall_time_resolved_s": t_resolved,
    }
    summary_path = out / "summary.md"
    values["wall_time_s"] = time.perf_counter() - wall0
    text = _summary(
        pipe=pipe,
        sc=sc,
        values=values,
        cells=cells,
        form_err=form_err,
        c0=c0,
        warnings_=pipeline_warnings,
        files=[*written, summary_path],
        out=out,
    )
    atomic_write_text(summary_path, text)
    written.append(summary_path)
    return DemoReport("morphogen", out, tuple(written), values)


# ---------------------------------------------------------------------------------------------
# single cells


def _single_cells(mol: Any, law: Any, simulate: Any) -> list[dict[str, Any]]:
    """The clamped per-cell network at ligand levels around K_m: C(t) from free receptors,
    against its quasi-steady value h(c), and the uptake k_int C at the end against u(c)."""
    K = float(law.K_m if law.K_m is not None else 1.0)
    t_end = CELL_SPAN * mol.t_molecular
    out = []
    for level in CELL_LEVELS:
        c = level * K
        res = simulate(
            mol.clamped,
            "ode",
            t_end=t_end,
            n_points=161,
            params={mol.ligand: c},
            rtol=1e-10,
            atol=1e-12,
        )
        C = res["C"].to_numpy()
        h = float(mol.receptor_states(c)["C"])
        out.append(
            {
                "c": c,
                "time": res.time,
                "C": C,
                "h": h,
                # after t_end the distance to the manifold has decayed like exp(-t_end/t_m) or
                # faster
                "final_error": abs(C[-1] - h) / h,
                "uptake": float(law(c)),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# figures


def _molecular_figure(mol: Any, law: Any, cells: Sequence[Mapping[str, Any]]) -> Any:
    from ..demo import _new_figure

    fig = _new_figure(figsize=(10.0, 4.0))
    ax1, ax2 = fig.subplots(1, 2)
    RT = float(mol.network.parameter_map["R_T"].value)
    for i, c in enumerate(cells):
        col = f"C{i}"
        ax1.plot(c["time"], c["C"] / RT, color=col, label=f"L = {_fmt(c['c'], 3)} nM")
        ax1.axhline(c["h"] / RT, color=col, linestyle=":", linewidth=1)
    ax1.axvline(mol.t_molecular, color="0.5", linestyle="--", linewidth=0.8)
    ax1.annotate("t_molecular", (mol.t_molecular, 0.02), fontsize="small", color="0.4")
    ax1.set_xlabel("time (min)")
    ax1.set_ylabel("receptor occupancy C/R_T")
    ax1.set_title("one cell at fixed ligand (dotted: QSSA C*(L))")
    ax1.legend(fontsize="small")
    K = float(law.K_m)
    cs = np.linspace(0.0, 6.0 * K, LAW_POINTS)
    ax2.plot(cs, law(cs), label="QSSA law u(L) = V_max L/(K_m + L)")
    ax2.plot(
        [c["c"] for c in cells],
        [mol.reduction.full.parameter_map["k_int"].value * c["C"][-1] for c in cells],
        "o",
        label="full cell, k_int C at the end",
    )
    ax2.axhline(float(law.V_max), color="0.5", linestyle="--", linewidth=0.8)
    ax2.axvline(K, color="0.5", linestyle=":", linewidth=0.8)
    ax2.annotate(
        f"V_max = {_fmt(float(law.V_max))}", (0.2 * K, 0.93 * float(law.V_max)), fontsize="small"
    )
    ax2.annotate(f"K_m = {_fmt(K)}", (1.05 * K, 0.05 * float(law.V_max)), fontsize="small")
    ax2.set_xlabel("ligand L (nM)")
    ax2.set_ylabel("uptake per cell (receptors/min)")
    ax2.set_title("the uptake law")
    ax2.legend(fontsize="small", loc="lower right")
    return fig


def _microstructure_figure(pipe: Any) -> Any:
    from ..demo import _new_figure

    d = pipe.diffusivity
    arr = np.asarray(d.microstructure)
    fig = _new_figure(figsize=(5.2, 4.4))
    ax = fig.subplots()
    n = arr.shape[0]
    edges = np.linspace(0, 1, n + 1)
    im = ax.pcolormesh(edges, edges, arr.T, cmap="cividis", norm=_log_norm(arr))
    fig.colorbar(im, ax=ax, label="local diffusivity (µm²/min)")
    ax.set_aspect("equal")
    ax.set_xlabel("y₁ (unit cell)")
    ax.set_ylabel("y₂ (unit cell)")
    ax.set_title(f"unit cell, {n}×{arr.shape[1]}: D_eff = {_fmt(d.value)} µm²/min")
    return fig


def _log_norm(arr: np.ndarray) -> Any:
    from matplotlib.colors import LogNorm

    lo, hi = float(np.min(arr)), float(np.max(arr))
    return LogNorm(vmin=lo, vmax=hi) if hi > lo > 0 else None


def _gradient_figure(pipe: Any, resolved_steady: Any, RT: float) -> Any:
    from ..demo import _new_figure

    g = pipe.grid
    x = g.coordinate(0)
    grad = pipe.gradient
    mol = pipe.molecular
    fig = _new_figure(figsize=(10.0, 4.0))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(x, grad.values, label="hierarchical pipeline")
    step = max(1, x.size // 30)
    ax1.plot(
        x[::step],
        resolved_steady.values(LIGAND)[::step],
        "o",
        markersize=3.5,
        label="receptors resolved (morphogen.yaml)",
    )
    if grad.decay_length is not None:
        ax1.axvline(x[0] + grad.decay_length, color="0.5", linestyle=":", linewidth=0.8)
        ax1.annotate(
            f"decay length {_fmt(grad.decay_length, 3)} µm",
            (x[0] + grad.decay_length * 1.05, 0.8 * float(grad.values[0])),
            fontsize="small",
        )
    ax1.set_xlabel("x (µm)")
    ax1.set_ylabel("free ligand L (nM)")
    ax1.set_title("steady gradient")
    ax1.legend(fontsize="small")
    occ = mol.receptor_states(grad.values)["C"] / RT
    ax2.plot(x, occ, color="C2", label="receptor occupancy C*/R_T")
    ax2.plot(
        x[::step],
        resolved_steady.values("C")[::step] / RT,
        "o",
        color="C2",
        markersize=3.5,
        label="resolved C/R_T",
    )
    ax2.set_xlabel("x (µm)")
    ax2.set_ylabel("occupancy")
    ax3 = ax2.twinx()
    ax3.plot(x, grad.sink, color="C3", label="sink q = ρ u(L)")
    ax3.set_ylabel("uptake q (nM/min)", color="C3")
    ax2.set_title("receptors and uptake along the tissue")
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize="small", loc="upper right")
    return fig


def _formation_figure(
    times: np.ndarray, formation: Result, resolved: Result, err: Sequence[float]
) -> Any:
    import matplotlib as mpl

    from ..demo import _new_figure

    fig = _new_figure(figsize=(10.0, 4.0))
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(2, 1))
    x = np.asarray(formation.data["x"].values)
    cmap = mpl.colormaps["viridis"]
    for i, t in enumerate(times):
        if t == 0:
            continue
        col = cmap(i / max(len(times) - 1, 1))
        ax1.plot(x, formation.data[LIGAND].values[i], color=col, label=f"t = {_fmt(t)} min")
        ax1.plot(x, resolved.data[LIGAND].values[i], color=col, linestyle="--", linewidth=1)
    ax1.set_xlabel("x (µm)")
    ax1.set_ylabel("free ligand L (nM)")
    ax1.set_title("formation: pipeline (solid) and resolved (dashed)")
    ax1.legend(fontsize="x-small", ncol=2)
    ax2.semilogy(times[1:], np.asarray(err)[1:], "o-")
    ax2.set_xlabel("time (min)")
    ax2.set_ylabel("max |L_pipeline - L_resolved| (nM)")
    ax2.set_title("difference while forming")
    return fig


def _timescales_figure(ts: Any) -> Any:
    from ..demo import _new_figure

    fig = _new_figure(figsize=(7.5, 3.6))
    ax = fig.subplots()
    items = [
        ("t_molecular\nreceptor relaxation", ts.t_molecular, "C0"),
        ("t_capture\nligand capture", ts.t_capture, "C1"),
        ("t_cell\nuptake turnover", ts.t_cell, "C1"),
        ("t_diffusion\nL²/D_eff", ts.t_diffusion, "C2"),
    ]
    items = [(n, v, c) for n, v, c in items if v is not None and math.isfinite(v)]
    y = np.arange(len(items))
    ax.barh(y, [v for _, v, _ in items], color=[c for _, _, c in items])
    ax.set_xscale("log")
    ax.set_yticks(y, [n for n, _, _ in items], fontsize="small")
    for yi, (_, v, _) in zip(y, items, strict=True):
        ax.annotate(f" {_fmt(v, 3)} min", (v, yi), va="center", fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("time (min)")
    r = ts.ratios
    verdict = "separated" if ts.separated else "NOT separated"
    ax.set_title(
        f"timescales: cell/molecular {_fmt(r['cell/molecular'], 3)}, tissue/cell "
        f"{_fmt(r['tissue/cell'], 3)} (≥ {ts.threshold:g}: {verdict})",
        fontsize="medium",
    )
    ax.set_xlim(right=max(v for _, v, _ in items) * 20)
    return fig


# ---------------------------------------------------------------------------------------------
# summary


def _boundary_text(bc: Mapping[str, Any]) -> str:
    parts = []
    for side, cond in bc.items():
        if isinstance(cond, Mapping) and len(cond) == 1:
            kind, val = next(iter(cond.items()))
            parts.append(f"{side}: {kind} {val}")
        else:
            parts.append(f"{side}: {cond}")
    return ", ".join(parts)


def _summary(
    *,
    pipe: Any,
    sc: Any,
    values: Mapping[str, float],
    cells: Sequence[Mapping[str, Any]],
    form_err: Sequence[float],
    c0: float,
    warnings_: Sequence[str],
    files: Sequence[Path],
    out: Path,
) -> str:
    v = values
    mol = pipe.molecular
    law = pipe.uptake
    ts = pipe.timescales
    d = pipe.diffusivity
    hom = d.homogenization
    grad = pipe.gradient
    p = sc.model.parameter_values
    g = pipe.grid
    bc = sc.spec["species"][LIGAND]["boundary"]
    rel = [Path(f).relative_to(out) if Path(f).is_relative_to(out) else Path(f) for f in files]
    lines = [
        "# Demo: a morphogen gradient, bottom-up",
        "",
        f"Scenario `{SCENARIO}` (copied here) describes the tissue with the receptors resolved "
        "in every grid cell. This demo derives the same gradient hierarchically -- molecular "
        "kinetics → QSSA uptake law → homogenized diffusivity → tissue PDE -- from the "
        "scenario's numbers, and checks it against the resolved model.",
        "Lengths in µm, time in minutes, ligand in nM, receptors per cell.",
        "",
        "| constant | value |",
        "|---|---|",
        *(f"| {k} | {_fmt(float(p[k]), 6)} |" for k in (*MOLECULAR_CONSTANTS, DENSITY)),
        f"| tissue | {_fmt(g.lengths[0])} µm, {g.shape[0]} cells |",
        f"| boundary | {_boundary_text(bc)} |",
        "",
        "## 1. Molecular stage: one cell",
        "",
        f"`{NETWORK}` with these constants, ligand held at the local concentration L (the "
        "tissue supplies it), receptor states C, R fast. QSSA (`scalebridge.reduce.reduce`) "
        "gives the critical manifold",
        "",
        *(f"    {k}*(L) = {mol.reduction.manifold.expressions[k]}" for k in mol.fast),
        "",
        f"({mol.reduction.stability.summary().splitlines()[0]}).",
        f"The receptors relax at rate 1/t_molecular or faster: t_molecular = "
        f"{_fmt(mol.t_molecular)} min (at L = 0, the slowest). Simulating one cell from free "
        f"receptors for {CELL_SPAN:g} t_molecular at L = "
        + ", ".join(f"{_fmt(c['c'], 3)}" for c in cells)
        + f" nM ends within {v['cell_relaxation_error']:.1e} (relative) of C*(L) "
        "(`molecular.png`).",
        "",
        "## 2. Uptake law",
        "",
        f"u(L) = -dL/dt on the manifold: {law.symbolic} with V_max = {law.V_max_expression} = "
        f"{_fmt(v['V_max'])} receptors/min per cell and K_m = {law.K_m_expression} = "
        f"{_fmt(v['K_m'])} nM.",
        "",
        "## 3. Effective diffusivity",
        "",
        f"Cell problem on the scenario's unit cell ({' × '.join(map(str, hom.shape))} pixels): "
        f"D_eff = {_fmt(v['D_eff'], 6)} µm²/min (isotropic; asymmetry {hom.asymmetry:.1e}, "
        f"residual {hom.residual:.1e}).",
        "Volume fractions counted from the pixels: "
        + ", ".join(f"D = {_fmt(k)}: {f:.4f}" for k, f in (hom.volume_fractions or {}).items())
        + f"; Hashin–Shtrikman bounds [{_fmt(v['D_eff_hs_lower'], 6)}, "
        f"{_fmt(v['D_eff_hs_upper'], 6)}], Wiener bounds [{_fmt(hom.harmonic_mean, 6)}, "
        f"{_fmt(hom.arithmetic_mean, 6)}] (`microstructure.png`).",
        "",
        "## 4. Tissue sink, PDE and gradient",
        "",
        f"q(L) = ρ u(L) = {pipe.sink.to_dict()['q']} nM/min; dL/dt = D_eff ∂²L/∂x² - q(L).",
        f"Steady gradient (Newton, residual {grad.steady.residual:.1e}): L = "
        f"{_fmt(v['source_level'])} nM in the first cell, {_fmt(v['far_level'])} nM in the "
        f"last; decay length {_fmt(v['decay_length'])} µm. Uptake ∫q dx = "
        f"{_fmt(v['total_uptake'], 8)} equals the influx at the source "
        f"{_fmt(v['boundary_influx'], 8)} (relative difference {v['mass_balance']:.1e}) "
        "(`gradient.png`).",
        "",
        "## Timescales",
        "",
        "| timescale | what | min |",
        "|---|---|---|",
        f"| t_molecular | slowest receptor relaxation, 1/(k_off + k_int) | "
        f"{_fmt(v['t_molecular'])} |",
        f"| t_capture | ligand capture by free receptors, 1/(ρ k_on R_T) | "
        f"{_fmt(v['t_capture'])} |",
        f"| t_cell | uptake turnover, K_m/(ρ V_max) | {_fmt(v['t_cell'])} |",
        f"| t_diffusion | L²/D_eff | {_fmt(v['t_diffusion'])} |",
        "",
        f"cell/molecular = {_fmt(v['ratio_cell_molecular'], 3)}, tissue/cell = "
        f"{_fmt(v['ratio_tissue_cell'], 3)}: "
        + (
            f"both at least {ts.threshold:g}, the scales are separated."
            if ts.separated
            else "NOT separated: " + "; ".join(warnings_ or ts.problems())
        ),
        "",
        "## Hierarchical against resolved",
        "",
        f"The resolved scenario (`resolved/`, {sc.method.name}, dt = {sc.spec['solver']['dt']:g} "
        f"min, {v['wall_time_resolved_s']:.2f} s) against the pipeline "
        f"({v['wall_time_pipeline_s']:.2f} s; its transient {v['wall_time_formation_s']:.2f} s):",
        "",
        f"- steady gradients: largest relative difference {v['steady_difference']:.1e}; "
        f"receptor occupancy C*/R_T differs by {v['occupancy_difference']:.1e} -- at a steady "
        "state the resolved receptors sit on the QSSA manifold, so the hierarchical gradient is "
        "exact there;",
        "- while the gradient forms (`formation.png`), the largest difference relative to the "
        f"source level is {v['formation_error_max']:.2e}; the reduction's error is "
        f"O(t_molecular/t_capture) = O({_fmt(v['t_molecular'] / v['t_capture'], 3)}), and it "
        "decays with the transient itself:",
        "",
        "| t (min) | max abs difference (nM) |",
        "|---|---|",
        *(f"| {_fmt(t)} | {e:.3g} |" for t, e in zip(sc.times, form_err, strict=True)),
        "",
        f"The whole demo took {v['wall_time_s']:.2f} s.",
        "",
        "## Files",
        "",
        *(f"- `{r}`" for r in rel),
        "",
        "Run the resolved scenario from the command line:",
        "",
        f"    scalebridge run {SCENARIO} --out resolved",
        "",
    ]
    return "\n".join(lines)
