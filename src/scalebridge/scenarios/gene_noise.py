"""The ``gene-noise`` demo: one gene, every description, from molecules to a tissue.

The two-stage model (``data/two_stage.ant``: 0 -> M at k_m, M -> 0 at g_m M, M -> M + P at
k_p M, P -> 0 at g_p P) is run from M = P = 0 to t = T through

* the CME by finite state projection (the exact stationary distribution, which P(T) equals to
  a relative e^-10; truncation error reported),
* exact SSA and the chemical Langevin equation (ensembles of ``RUNS`` runs, fixed seeds),
* the linear noise approximation (time-dependent, and stationary as a Gaussian),
* the rate equations (the ODE mean).

The protein distribution at T from all five goes on one figure.  For this linear network the
exact stationary moments are known, ``<P> = k_p k_m/(g_m g_p)`` and
``Fano(P) = 1 + k_p/(g_m + g_p)``, and every description is compared with them.

The protein then sets a cell phenotype, a Hill activation ``Y = P^2/(K^2 + P^2)`` with K at
twice the mean protein level (so the phenotype is below half-maximal and amplifies the relative
noise by its elasticity ``2 (1 - Y)``): its mean and variance by the delta method and exactly
(transforming the FSP distribution), side by side. A tissue property averages N cells: its
variance is ``Var(Y)/N`` for independent cells and ``Var(Y) (1 + (N - 1) rho)/N`` with
correlation rho between cells, which leaves a floor ``rho Var(Y)`` that no number of cells
removes. N*, the least number of cells whose average protein level fluctuates by less than
``EPSILON`` (relative) over the second half of the window, comes from the LNA and is checked
with an N-cell CLE ensemble (:func:`scalebridge.noise.system_size.least_cells`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..demo import DemoReport
    from ..results import Result

MODEL = "two_stage.ant"
T_END = 100.0  # minutes: ten protein lifetimes, so P(T) is stationary to e^-10
N_POINTS = 101
RUNS = 4000
SEED = 2026
CLE_DT = 0.05  # weak order 2: the bias of the moments is O(dt^2), far below sampling error
FSP_TOL = 1e-8
EPSILON = 0.01  # relative fluctuation allowed for the tissue average
RHO = 0.01  # correlation between cells, for the second tissue curve
PHENOTYPE = "P^2/(K^2 + P^2)"
CELLS = np.unique(np.logspace(0, 4, 41).round().astype(int))


def _hist(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Probability per unit count in each bin (a density comparable to a pmf)."""
    counts, _ = np.histogram(values, bins=edges)
    return counts / (values.size * np.diff(edges))


def run_gene_noise(out: Path) -> DemoReport:
    """The demo (module docstring); writes into ``out``: ``model.ant``, ``ssa.nc``, ``cle.nc``,
    ``fsp.nc``, ``lna.csv``, ``ode.csv``, ``descriptions.png``, ``tissue.png``, ``summary.md``."""
    from .._io import atomic_write_text
    from ..api import load, simulate
    from ..demo import DemoReport, _new_figure, _save_figure, data_file
    from ..noise.propagation import ensemble_samples, fsp_marginal, propagate, tissue_average
    from ..noise.system_size import least_cells
    from ..wellmixed.lna import lna_stationary

    t_start = time.perf_counter()
    with data_file(MODEL) as path:
        net = load(path)
        model_text = path.read_text()
    p = {q.id: float(q.value) for q in net.parameters if q.value is not None}
    km, gm, kp, gp = p["k_m"], p["g_m"], p["k_p"], p["g_p"]
    exact_mean = kp * km / (gm * gp)
    exact_fano = 1.0 + kp / (gm + gp)

    runs: dict[str, Result] = {}
    runs["ode"] = simulate(net, "ode", t_end=T_END, n_points=N_POINTS, rtol=1e-10, atol=1e-10)
    runs["lna"] = simulate(net, "lna", t_end=T_END, n_points=N_POINTS)
    runs["ssa"] = simulate(net, "ssa", t_end=T_END, n_points=N_POINTS, runs=RUNS, seed=SEED)
    runs["cle"] = simulate(
        net, "cle", t_end=T_END, n_points=N_POINTS, runs=RUNS, seed=SEED + 1,
        scheme="weak2", dt=CLE_DT,
    )  # fmt: skip
    runs["fsp"] = simulate(net, "fsp", t_end=T_END, stationary=True, tol=FSP_TOL, joint=False)
    lna = lna_stationary(net)
    i_p = lna.index("P")

    counts, pmf = fsp_marginal(runs["fsp"], "P")
    fsp_mean = float(counts @ pmf / pmf.sum())
    fsp_var = float(((counts - fsp_mean) ** 2) @ pmf / pmf.sum())
    ssa_p = ensemble_samples(runs["ssa"], "P")
    cle_p = ensemble_samples(runs["cle"], "P")

    def fano(x: np.ndarray) -> float:
        return float(x.var(ddof=1) / x.mean())

    rows = {
        "FSP (stationary)": (fsp_mean, fsp_var / fsp_mean),
        f"SSA ({RUNS} runs)": (float(ssa_p.mean()), fano(ssa_p)),
        f"CLE ({RUNS} runs, weak order 2)": (float(cle_p.mean()), fano(cle_p)),
        "LNA (stationary)": (float(lna.mean[i_p]), float(lna.fano[i_p])),
        "ODE": (float(runs["ode"].data["P"].values[-1]), math.nan),
    }

    # phenotype: delta method against the exact transformation of the FSP distribution
    K = 2.0 * exact_mean
    pheno = propagate(PHENOTYPE, distribution=(counts, pmf), variable="P", params={"K": K})
    pheno_ssa = propagate(PHENOTYPE, samples=ssa_p, variable="P", params={"K": K})
    tissue = tissue_average(pheno, CELLS)
    tissue_rho = tissue_average(pheno, CELLS, rho=RHO)
    protein = tissue_average(fsp_var, CELLS, cell_mean=fsp_mean)
    nstar = least_cells(
        net, EPSILON, T_END, t_start=T_END / 2, species=["P"], runs=2000, seed=SEED + 2,
        mean_method=None,
    )  # fmt: skip

    files: list[Path] = []
    model_path = out / "model.ant"
    atomic_write_text(model_path, model_text)
    files.append(model_path)
    for name in ("ssa", "cle", "fsp"):
        runs[name].to_netcdf(out / f"{name}.nc")
        files.append(out / f"{name}.nc")
    for name in ("lna", "ode"):
        runs[name].to_csv(out / f"{name}.csv")
        files.append(out / f"{name}.csv")

    # figure 1: the protein distribution at T and the moments over time
    fig = _new_figure(figsize=(12, 4.8))
    ax, ax2 = fig.subplots(1, 2)
    edges = np.arange(0.0, counts.max() + 20.0, 20.0) - 0.5
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.bar(centres, _hist(ssa_p, edges), width=np.diff(edges), color="0.8", label="SSA")
    half = 5.0 * math.sqrt(exact_fano * exact_mean)  # five standard deviations
    ax.set_xlim(exact_mean - half, exact_mean + half)
    ax.step(centres, _hist(cle_p, edges), where="mid", color="tab:green", label="CLE")
    ax.plot(counts, pmf, color="k", lw=1.5, label="FSP (exact)")
    sd = math.sqrt(float(lna.covariance[i_p, i_p]))
    xs = np.linspace(counts.min(), counts.max(), 400)
    gauss = np.exp(-0.5 * ((xs - lna.mean[i_p]) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    ax.plot(xs, gauss, "--", color="tab:red", label="LNA Gaussian")
    ax.axvline(rows["ODE"][0], color="tab:blue", lw=1, label="ODE mean")
    ax.set_xlabel(f"protein P (molecules) at t = {T_END:g} min")
    ax.set_ylabel("probability")
    ax.set_title("One gene, five descriptions")
    ax.legend()
    t = runs["ode"].data["time"].values
    for name, colour in (("ssa", "0.5"), ("cle", "tab:green")):
        m = runs[name].mean()["P"].values
        s = runs[name].sd()["P"].values
        ax2.plot(t, m, color=colour, label=f"{name.upper()} mean ± sd")
        ax2.fill_between(t, m - s, m + s, color=colour, alpha=0.2)
    lm = runs["lna"].data["P"].values
    ls = runs["lna"].data["P-sd"].values
    ax2.plot(t, lm + ls, ":", color="tab:red", label="LNA mean ± sd")
    ax2.plot(t, lm - ls, ":", color="tab:red")
    ax2.plot(t, runs["ode"].data["P"].values, color="tab:blue", label="ODE")
    ax2.set_xlabel("time (min)")
    ax2.set_ylabel("protein P (molecules)")
    ax2.legend()
    _save_figure(fig, out / "descriptions.png")
    files.append(out / "descriptions.png")

    # figure 2: tissue averages against N, N* marked
    fig = _new_figure(figsize=(7, 4.8))
    ax = fig.subplots()
    cv_p = protein.cv
    cv_y = tissue.cv
    cv_y_rho = tissue_rho.cv
    assert cv_p is not None and cv_y is not None and cv_y_rho is not None
    ax.loglog(CELLS, cv_p, color="k", label="protein, independent cells")
    ax.loglog(CELLS, cv_y, color="tab:purple", label=f"phenotype {PHENOTYPE}")
    ax.loglog(CELLS, cv_y_rho, "--", color="tab:purple", label=f"phenotype, ρ = {RHO:g}")
    ax.axhline(EPSILON, color="0.5", lw=1)
    ax.axvline(nstar.n_star_lna, color="tab:red", lw=1)
    ax.annotate(
        f"protein within {EPSILON:.0%}: N* = {nstar.n_star_lna} (LNA), {nstar.n_star_cle} (CLE)",
        (nstar.n_star_lna, EPSILON), textcoords="offset points", xytext=(8, -26), color="tab:red",
    )  # fmt: skip
    ax.set_xlabel("cells averaged, N")
    ax.set_ylabel("relative fluctuation of the tissue average (sd / mean)")
    ax.legend()
    _save_figure(fig, out / "tissue.png")
    files.append(out / "tissue.png")

    values: dict[str, float] = {
        "exact_mean_P": exact_mean,
        "exact_fano_P": exact_fano,
        "fsp_truncation_error": float(max(runs["fsp"].stats["truncation_error"])),
        "n_star_lna": float(nstar.n_star_lna),
        "n_star_cle": float(nstar.n_star_cle or math.nan),
        "delta_var_Y": pheno.delta_var,
        "exact_var_Y": float(pheno.exact_var or math.nan),
    }
    for label, (row_mean, row_fano) in rows.items():
        key = label.split(" ")[0].lower()
        values[f"{key}_mean_P"] = row_mean
        values[f"{key}_fano_P"] = row_fano
    values["wall_time_s"] = time.perf_counter() - t_start
    summary = _summary(
        rows, exact_mean, exact_fano, pheno, pheno_ssa, nstar, tissue_rho, values, files
    )
    atomic_write_text(out / "summary.md", summary)
    files.append(out / "summary.md")
    return DemoReport("gene-noise", out, tuple(files), values)


def _summary(
    rows: dict[str, tuple[float, float]], exact_mean: float, exact_fano: float, pheno: Any,
    pheno_ssa: Any, nstar: Any, tissue_rho: Any, v: dict[str, float], files: list[Path],
) -> str:  # fmt: skip
    def rel(x: float, ref: float) -> str:
        return "—" if not math.isfinite(x) else f"{(x - ref) / ref:+.2%}"

    floor = tissue_rho.floor
    reach = tissue_rho.least_cells(EPSILON)
    lines = [
        "# gene-noise: one gene, every description",
        "",
        f"Two-stage gene expression (`model.ant`) from M = P = 0 to t = {T_END:g} min. Exact "
        f"stationary protein mean k_p k_m/(g_m g_p) = {exact_mean:g} and Fano factor "
        f"1 + k_p/(g_m + g_p) = {exact_fano:.6g}.",
        "",
        f"## The protein at t = {T_END:g} min",
        "",
        "| description | mean P | vs exact | Fano factor | vs exact |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {m:.6g} | {rel(m, exact_mean)} | "
            f"{'—' if not math.isfinite(f) else f'{f:.5g}'} | {rel(f, exact_fano)} |"
            for label, (m, f) in rows.items()
        ),
        "",
        f"FSP error estimate of the stationary distribution (1-norm): "
        f"{v['fsp_truncation_error']:.1e}. Ensembles have sampling errors: the Fano "
        f"factor's relative standard error is about {math.sqrt(2 / (RUNS - 1)):.1%}.",
        "",
        f"## Phenotype Y = {PHENOTYPE}, K = {2 * exact_mean:g}",
        "",
        "| | mean Y | Var Y |",
        "|---|---|---|",
        f"| delta method | {pheno.delta_mean:.6g} | {pheno.delta_var:.6g} |",
        f"| exact (FSP distribution) | {pheno.exact_mean:.6g} | {pheno.exact_var:.6g} |",
        f"| exact (SSA samples) | {pheno_ssa.exact_mean:.6g} | {pheno_ssa.exact_var:.6g} |",
        "",
        f"The delta method's error: mean {pheno.mean_error:+.3g}, variance "
        f"{pheno.var_error:+.3g} ({pheno.var_error / pheno.exact_var:+.2%}).",
        "",
        "## Tissue averages",
        "",
        f"N*, the least number of cells whose average protein fluctuates by less than "
        f"{EPSILON:g} (sd / mean) over t = {T_END / 2:g} … {T_END:g} min: "
        f"**{nstar.n_star_lna}** from the LNA, **{nstar.n_star_cle}** from an N-cell CLE "
        f"ensemble (relative difference {nstar.relative_difference:.1%}).",
        "",
        f"With a correlation ρ = {RHO:g} between cells, the phenotype average keeps a variance "
        f"floor ρ Var Y = {floor:.3g}, a relative fluctuation of "
        f"{math.sqrt(floor) / pheno.exact_mean:.2%} that no number of cells removes"
        + (
            f"; it falls below {EPSILON:g} from N = {reach}."
            if reach is not None
            else f", above {EPSILON:g}."
        ),
        "",
        f"The whole demo took {v['wall_time_s']:.1f} s.",
        "",
        "## Files",
        "",
        *(f"- `{p.name}`" for p in files),
        "- `summary.md`",
        "",
        "Reproduce from the command line:",
        "",
        f"    scalebridge simulate model.ant --method ssa --t-end {T_END:g} --runs {RUNS} "
        f"--seed {SEED} --out ssa.csv",
        f"    scalebridge simulate model.ant --method fsp --t-end {T_END:g} --n-points 3 "
        f"--tol {FSP_TOL:g} --out fsp.nc",
        "    scalebridge analyze model.ant --lna",
        "",
    ]
    return "\n".join(lines)
