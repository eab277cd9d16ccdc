"""Fisher information of a PEtab problem: rank, unseen directions and Cramér–Rao intervals.

For measurements ``m_k`` with simulations ``y_k(x)`` and noise ``sigma_k(x)`` the Fisher
information with respect to the estimated parameters ``x`` (on their parameter scales) is

    F = sum_k  a_k g_k g_k^T + b_k s_k s_k^T,    g_k = h'(y_k) dy_k/dx / sigma_k,
                                                  s_k = dsigma_k/dx / sigma_k,

with ``(a, b) = (1, 2)`` for normal and ``(1, 1)`` for Laplace noise
(:meth:`~scalebridge.infer.petab_gradient.MeasurementSensitivities.fim`; the derivatives come
from forward sensitivities).  For a linear Gaussian model ``y = X x`` with fixed ``sigma`` it is
``X^T X / sigma^2``.

Analysis (:func:`fisher_information`):

* **Spectrum.**  ``F = V diag(lambda) V^T`` (symmetric eigen-decomposition, ascending
  eigenvalues).  The numerical rank counts eigenvalues ``> rtol_rank * lambda_max``; the
  condition number is ``lambda_max / lambda_min`` (infinite when the rank is deficient).
* **Unseen directions.**  The eigenvectors of the eigenvalues at or below the tolerance span
  the directions the data cannot see.  They are written in natural-log coordinates
  ``theta_i = ln p_i`` (``p`` the linear values): ``dtheta_i = dx_i * ln 10`` on log10 scale,
  ``dx_i`` on log scale and ``dx_i / p_i`` on linear scale.  A null vector ``v`` then says
  that ``p_i -> p_i * c^{v_i}`` leaves the fit unchanged: the monomial ``prod p_i^{v_i}``
  moves freely (``kon*koff`` for ``v = (1, 1)``: kon and koff scaled together).  The null
  space is brought to reduced row-echelon form and each entry is matched to a fraction with a
  small denominator (accepted when the fraction is within ``1e-3`` of the entry); the
  **identifiable combinations** are an integer basis of its orthogonal complement among the
  parameters the null space touches (exponent vectors ``e`` with ``e . v = 0`` for every
  null vector: ``koff/kon``), computed exactly with ``sympy.Matrix.nullspace`` on the
  rational entries.  When the entries are not close to small fractions the directions are
  reported numerically and no combination is given.
* **Cramér–Rao intervals.**  ``x_i +/- z sqrt(C_ii)`` with ``z`` the ``(1 + alpha)/2``
  quantile of the standard normal distribution and ``C = F^+`` the pseudo-inverse on the
  identifiable subspace (``C = V_r diag(1/lambda_r) V_r^T`` over the eigenvalues above the
  tolerance).  A parameter whose unit vector projects onto the unseen subspace by more than
  ``sqrt(rtol_rank)`` gets the interval ``(0, inf)`` on log scales (``(-inf, inf)`` on the
  linear scale).  The bounds are reported as linear values.  The intervals are the
  asymptotic (local, linearised) ones: profiles (:mod:`.profile`) give the likelihood-based
  intervals.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import OptionError, SolverError
from .petab_gradient import PetabGradient
from .petab_problem import PetabProblem, unscale

__all__ = ["FimResult", "UnseenDirection", "fisher_information", "monomial_text"]

MAX_DENOMINATOR = 12
RATIONAL_TOL = 1e-3


@dataclass(frozen=True)
class UnseenDirection:
    """A direction in parameter space that the data cannot see.

    ``exponents``: the direction in log coordinates as small integers (``{"kon": 1,
    "koff": 1}``), or None when it is not close to one; ``vector``: the unit direction in
    natural-log coordinates; ``monomial``: ``prod p_i^{e_i}`` as text (``kon*koff``), the
    quantity that changes freely along the direction; ``text``: a sentence for people."""

    vector: dict[str, float]
    exponents: dict[str, int] | None
    monomial: str
    text: str

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "monomial": self.monomial,
            "exponents": dict(self.exponents) if self.exponents is not None else None,
            "vector_log": dict(self.vector),
        }


@dataclass(frozen=True)
class FimResult:
    """Fisher information at ``x`` and what it says (see the module docstring).

    * ``fim`` -- ``F`` with respect to ``x`` (parameter scales, parameter-table order);
    * ``eigenvalues`` (ascending), ``eigenvectors`` (columns, same order), ``rank``,
      ``condition_number`` (inf when singular), ``rtol_rank``;
    * ``unseen`` -- :class:`UnseenDirection` per dimension of the unseen subspace;
    * ``identifiable_combinations`` -- monomials of the unseen parameters that the data do
      determine (``["koff/kon"]``), as text; ``combination_exponents`` the same as dicts;
    * ``standard_errors`` -- ``sqrt(C_ii)`` on the parameter scale (inf for unseen
      parameters); ``cramer_rao`` -- name -> (lower, upper) in linear values.
    """

    parameter_ids: list[str]
    scales: list[str]
    x: np.ndarray
    fim: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    rank: int
    condition_number: float
    rtol_rank: float
    unseen: list[UnseenDirection]
    identifiable_combinations: list[str]
    combination_exponents: list[dict[str, int]]
    standard_errors: np.ndarray
    cramer_rao: dict[str, tuple[float, float]]
    alpha: float
    n_measurements: int
    notes: list[str] = field(default_factory=list)

    @property
    def values(self) -> dict[str, float]:
        """Linear values of the parameters at ``x``."""
        return {
            p: unscale(float(v), s)
            for p, v, s in zip(self.parameter_ids, self.x, self.scales, strict=True)
        }

    @property
    def unseen_parameters(self) -> list[str]:
        """Parameters with a component in the unseen subspace (infinite Cramér–Rao interval)."""
        return [
            p
            for p, se in zip(self.parameter_ids, self.standard_errors, strict=True)
            if not math.isfinite(se)
        ]

    @property
    def covariance(self) -> np.ndarray:
        """``F^+`` on the identifiable subspace (parameter scales)."""
        return _pinv(self.eigenvalues, self.eigenvectors, self.rank)

    def table(self) -> Any:
        """A pandas DataFrame, one row per parameter: scale, x, linear value, standard error
        on the parameter scale, Cramér–Rao bounds (linear) and the length of the parameter's
        projection onto the unseen subspace."""
        import pandas as pd

        proj = _null_projection(self.eigenvectors, self.rank)
        vals = self.values
        rows = []
        for i, p in enumerate(self.parameter_ids):
            lo, hi = self.cramer_rao[p]
            rows.append(
                {
                    "parameter": p,
                    "scale": self.scales[i],
                    "x": float(self.x[i]),
                    "value": vals[p],
                    "sd": float(self.standard_errors[i]),
                    "cr_lower": lo,
                    "cr_upper": hi,
                    "unseen_component": float(proj[i]),
                }
            )
        return pd.DataFrame(rows)

    def format(self) -> str:
        """A short text report."""
        n = len(self.parameter_ids)
        lines = [
            f"Fisher information: rank {self.rank} of {n} (eigenvalues > {self.rtol_rank:g} x "
            f"largest), condition number {_fmt(self.condition_number)}, "
            f"{self.n_measurements} measurements",
            f"eigenvalues: {', '.join(f'{v:.3g}' for v in self.eigenvalues)}",
        ]
        for u in self.unseen:
            lines.append(f"unseen: {u.text}")
        if self.identifiable_combinations:
            lines.append("identifiable combinations: " + ", ".join(self.identifiable_combinations))
        w = max([len(p) for p in self.parameter_ids] + [9])
        pct = f"{100 * self.alpha:g}%"
        lines.append(f"{'parameter':<{w}}  {'value':>11}  Cramér–Rao {pct} interval (linear)")
        vals = self.values
        for p in self.parameter_ids:
            lo, hi = self.cramer_rao[p]
            lines.append(f"{p:<{w}}  {vals[p]:>11.5g}  [{_fmt(lo)}, {_fmt(hi)}]")
        lines += [f"note: {s}" for s in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (non-finite numbers become None, as in ``scalebridge._io.json_safe``)."""
        from .._io import json_safe

        out = {
            "parameters": list(self.parameter_ids),
            "scales": list(self.scales),
            "x": self.x,
            "values": self.values,
            "fim": self.fim,
            "eigenvalues": self.eigenvalues,
            "eigenvectors": self.eigenvectors,
            "rank": self.rank,
            "n_parameters": len(self.parameter_ids),
            "rtol_rank": self.rtol_rank,
            "condition_number": self.condition_number,
            "singular": self.rank < len(self.parameter_ids),
            "unseen": [u.to_dict() for u in self.unseen],
            "identifiable_combinations": list(self.identifiable_combinations),
            "standard_errors": self.standard_errors,
            "alpha": self.alpha,
            "cramer_rao": {
                p: {"lower": lo, "upper": hi, "finite": math.isfinite(lo) and math.isfinite(hi)}
                for p, (lo, hi) in self.cramer_rao.items()
            },
            "n_measurements": self.n_measurements,
            "notes": list(self.notes),
        }
        result: dict[str, Any] = json_safe(out)
        return result

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Eigenvalue spectrum (log scale, with the rank tolerance) and eigenvector loadings
        (a heat map, one column per eigenvector) written to ``path`` (PNG/PDF/SVG by suffix,
        atomically)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from .._io import atomic_path

        n = len(self.parameter_ids)
        lam = np.asarray(self.eigenvalues, dtype=np.float64)
        lam_max = float(lam.max()) if lam.size and lam.max() > 0 else 1.0
        floor = lam_max * 1e-18
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(4.0 + 0.9 * n, 3.6))
        idx = np.arange(1, n + 1)
        colors = ["tab:red" if i < n - self.rank else "tab:blue" for i in range(n)]
        ax1.bar(idx, np.maximum(lam, floor), color=colors)
        ax1.set_yscale("log")
        ax1.axhline(self.rtol_rank * lam_max, color="k", ls="--", lw=0.8, label="rank tolerance")
        ax1.set_xticks(idx)
        ax1.set_xlabel("eigenvalue index (ascending)")
        ax1.set_ylabel("eigenvalue of F")
        ax1.set_title(f"rank {self.rank} of {n}, cond {_fmt(self.condition_number)}")
        ax1.legend(fontsize=7)
        vmax = 1.0
        im = ax2.imshow(self.eigenvectors, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax2.set_yticks(range(n))
        ax2.set_yticklabels(self.parameter_ids)
        ax2.set_xticks(range(n))
        ax2.set_xticklabels([f"{v:.1e}" for v in lam], rotation=60, fontsize=7)
        ax2.set_xlabel("eigenvector (by eigenvalue)")
        ax2.set_title("loadings")
        fig.colorbar(im, ax=ax2, fraction=0.046)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.4g}"


def _pinv(lam: np.ndarray, vec: np.ndarray, rank: int) -> np.ndarray:
    n = len(lam)
    vr = vec[:, n - rank :]
    out: np.ndarray = (vr / lam[n - rank :]) @ vr.T
    return out


def _null_projection(vec: np.ndarray, rank: int) -> np.ndarray:
    """Length of each unit vector's projection onto the span of the first n - rank columns."""
    n = vec.shape[0]
    v0 = vec[:, : n - rank]
    out: np.ndarray = np.sqrt(np.sum(v0 * v0, axis=1)) if n - rank else np.zeros(n)
    return out


def monomial_text(exponents: dict[str, int] | Sequence[tuple[str, int]]) -> str:
    """``prod p^e`` as text: ``koff/kon``, ``Rtot*s``, ``a^2*b/(c*d)``, ``1/kon``."""
    items = list(exponents.items()) if isinstance(exponents, dict) else list(exponents)

    def part(name: str, e: int) -> str:
        return name if e == 1 else f"{name}^{e}"

    num = [part(p, e) for p, e in items if e > 0]
    den = [part(p, -e) for p, e in items if e < 0]
    top = "*".join(num) if num else "1"
    if not den:
        return top
    bottom = den[0] if len(den) == 1 else "(" + "*".join(den) + ")"
    return f"{top}/{bottom}"


def _orient(e: Sequence[int]) -> list[int]:
    """Sign convention for an exponent vector (defined up to sign): more positive than negative
    entries; on a tie, the first nonzero entry negative (``koff/kon``, not ``kon/koff``)."""
    pos = sum(1 for v in e if v > 0)
    neg = sum(1 for v in e if v < 0)
    first = next((v for v in e if v), 0)
    if neg > pos or (neg == pos and first > 0):
        return [-v for v in e]
    return list(e)


def _integer_vector(fr: Sequence[Fraction]) -> list[int]:
    den = 1
    for f in fr:
        den = den * f.denominator // math.gcd(den, f.denominator)
    ints = [int(f * den) for f in fr]
    g = 0
    for v in ints:
        g = math.gcd(g, abs(v))
    return [v // g for v in ints] if g else ints


def _rref(a: np.ndarray) -> np.ndarray:
    """Reduced row-echelon form of ``a`` (rows independent) with partial pivoting."""
    m = np.array(a, dtype=np.float64)
    rows, cols = m.shape
    r = 0
    for c in range(cols):
        if r == rows:
            break
        piv = r + int(np.argmax(np.abs(m[r:, c])))
        if abs(m[piv, c]) < 1e-9:
            continue
        m[[r, piv]] = m[[piv, r]]
        m[r] /= m[r, c]
        for i in range(rows):
            if i != r:
                m[i] -= m[i, c] * m[r]
        r += 1
    return m[:r]


def _name_direction(names: Sequence[str], e: Sequence[int]) -> str:
    mono = monomial_text([(p, v) for p, v in zip(names, e, strict=True) if v])
    used = [(p, v) for p, v in zip(names, e, strict=True) if v]
    if len(used) == 1:
        return f"{used[0][0]} alone ({mono}): the data do not depend on it"
    mags = {abs(v) for _, v in used}
    if len(mags) == 1:
        up = [p for p, v in used if v > 0]
        down = [p for p, v in used if v < 0]
        if not down:
            return f"{' and '.join(up)} scaled together ({mono})"
        if len(up) == 1 and len(down) == 1:
            return f"{up[0]} and {down[0]} scaled inversely ({mono})"
    return f"{mono} changes freely (p_i -> p_i * c^e_i)"


def _unseen_analysis(
    ids: Sequence[str], null_log: np.ndarray, tol_comp: float
) -> tuple[list[UnseenDirection], list[str], list[dict[str, int]], list[str]]:
    """Named directions and identifiable combinations from an orthonormal basis (columns) of
    the unseen subspace in natural-log coordinates."""
    import sympy

    notes: list[str] = []
    k = null_log.shape[1]
    if k == 0:
        return [], [], [], notes
    support = [i for i in range(len(ids)) if np.linalg.norm(null_log[i]) > tol_comp]
    names = [ids[i] for i in support]
    sub = null_log[support, :]
    red = _rref(sub.T)
    fracs: list[list[Fraction]] | None = []
    for row in red:
        fr = [Fraction(float(v)).limit_denominator(MAX_DENOMINATOR) for v in row]
        if any(abs(float(f) - v) > RATIONAL_TOL for f, v in zip(fr, row, strict=True)):
            fracs = None
            break
        assert fracs is not None
        fracs.append(fr)
    directions: list[UnseenDirection] = []
    if fracs is None or len(fracs) != k:
        notes.append(
            "the unseen directions are not close to small-integer exponent vectors; they are "
            "given numerically and no identifiable combination is derived"
        )
        for j in range(k):
            v = null_log[:, j] / np.linalg.norm(null_log[:, j])
            vec = {p: float(v[i]) for i, p in enumerate(ids) if abs(v[i]) > tol_comp}
            mono = "*".join(f"{p}^{c:.3g}" for p, c in vec.items())
            directions.append(
                UnseenDirection(vec, None, mono, f"{mono} changes freely (numerical direction)")
            )
        return directions, [], [], notes
    int_rows = [_orient(_integer_vector(fr)) for fr in fracs]
    for e in int_rows:
        norm = math.sqrt(sum(v * v for v in e))
        vec = {p: v / norm for p, v in zip(names, e, strict=True) if v}
        exps = {p: v for p, v in zip(names, e, strict=True) if v}
        directions.append(
            UnseenDirection(vec, exps, monomial_text(exps), _name_direction(names, e))
        )
    mat = sympy.Matrix([[sympy.Rational(f.numerator, f.denominator) for f in fr] for fr in fracs])
    combos: list[str] = []
    combo_exps: list[dict[str, int]] = []
    for col in mat.nullspace():
        fr = [Fraction(int(sympy.fraction(c)[0]), int(sympy.fraction(c)[1])) for c in col]
        e = _orient(_integer_vector(fr))
        exps = {p: v for p, v in zip(names, e, strict=True) if v}
        combo_exps.append(exps)
        combos.append(monomial_text(exps))
    return directions, combos, combo_exps, notes


def fisher_information(
    problem: PetabProblem,
    x: Sequence[float] | np.ndarray | None = None,
    *,
    objective: PetabGradient | None = None,
    alpha: float = 0.95,
    rtol_rank: float = 1e-8,
) -> FimResult:
    """Fisher information of ``problem`` at ``x`` (estimated parameters on their parameter
    scales, parameter-table order; default: the nominal values) and its analysis (module
    docstring).  ``objective``: a :class:`PetabGradient` of ``problem`` to reuse;
    ``alpha``: confidence level of the Cramér–Rao intervals; ``rtol_rank``: eigenvalues at or
    below ``rtol_rank`` times the largest count as zero."""
    if not 0.0 < alpha < 1.0:
        raise OptionError(f"alpha must lie in (0, 1), got {alpha}")
    if not 0.0 < rtol_rank < 1.0:
        raise OptionError(f"rtol_rank must lie in (0, 1), got {rtol_rank}")
    from scipy.stats import norm

    grad = objective if objective is not None else PetabGradient(problem)
    ids = list(problem.estimated_ids)
    scales = [problem.parameter_scales[p] for p in ids]
    xa = np.asarray(problem.x_nominal if x is None else x, dtype=np.float64).copy()
    if xa.shape != (len(ids),):
        raise OptionError(f"expected {len(ids)} parameter values, got shape {xa.shape}")
    ms = grad.measurement_sensitivities(xa)
    f = np.asarray(ms.fim(), dtype=np.float64)
    if not np.all(np.isfinite(f)):
        bad = [ids[i] for i in range(len(ids)) if not np.all(np.isfinite(f[i]))]
        raise SolverError(
            "the Fisher information is not finite (simulation or sensitivity failed) for "
            + ", ".join(bad)
        )
    f = 0.5 * (f + f.T)
    n = len(ids)
    lam, vec = np.linalg.eigh(f)
    # Sign convention: the largest-magnitude entry of each eigenvector is positive.
    for j in range(n):
        if vec[np.argmax(np.abs(vec[:, j])), j] < 0:
            vec[:, j] = -vec[:, j]
    lam_max = float(lam[-1]) if n else 0.0
    tol = rtol_rank * lam_max
    rank = int(np.sum(lam > tol)) if lam_max > 0 else 0
    cond = float(lam_max / lam[0]) if rank == n and n else math.inf
    # Unseen subspace in natural-log coordinates: dtheta = c * dx.
    vals = [unscale(float(v), s) for v, s in zip(xa, scales, strict=True)]
    notes: list[str] = []
    c = np.array(
        [
            math.log(10.0) if s == "log10" else 1.0 if s == "log" else (1.0 / v if v > 0 else 0.0)
            for s, v in zip(scales, vals, strict=True)
        ]
    )
    null_x = vec[:, : n - rank]
    tol_comp = math.sqrt(rtol_rank)
    nonpos = [p for p, s, v in zip(ids, scales, vals, strict=True) if s == "lin" and v <= 0]
    unseen: list[UnseenDirection] = []
    combos: list[str] = []
    combo_exps: list[dict[str, int]] = []
    if null_x.shape[1]:
        involved = [ids[i] for i in range(n) if np.linalg.norm(null_x[i]) > tol_comp]
        if any(p in nonpos for p in involved):
            notes.append(
                "unseen directions involve linear-scale parameters that are not positive ("
                + ", ".join(p for p in involved if p in nonpos)
                + "): no monomial names"
            )
            for j in range(null_x.shape[1]):
                vj = {ids[i]: float(null_x[i, j]) for i in range(n) if abs(null_x[i, j]) > tol_comp}
                txt = " + ".join(f"{v:.3g}*d{p}" for p, v in vj.items())
                unseen.append(UnseenDirection(vj, None, txt, f"{txt} (parameter-scale direction)"))
        else:
            q, _ = np.linalg.qr(c[:, None] * null_x)
            unseen, combos, combo_exps, more = _unseen_analysis(ids, q, tol_comp)
            notes += more
    cov = _pinv(lam, vec, rank)
    proj = _null_projection(vec, rank)
    z = float(norm.ppf(0.5 * (1.0 + alpha)))
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    se = np.where(proj > tol_comp, math.inf, se)
    cr: dict[str, tuple[float, float]] = {}
    for i, p in enumerate(ids):
        if not math.isfinite(se[i]):
            cr[p] = (-math.inf, math.inf) if scales[i] == "lin" else (0.0, math.inf)
            continue
        lo, hi = xa[i] - z * se[i], xa[i] + z * se[i]
        cr[p] = (_unscale_safe(lo, scales[i]), _unscale_safe(hi, scales[i]))
    return FimResult(
        parameter_ids=ids,
        scales=scales,
        x=xa,
        fim=f,
        eigenvalues=lam,
        eigenvectors=vec,
        rank=rank,
        condition_number=cond,
        rtol_rank=rtol_rank,
        unseen=unseen,
        identifiable_combinations=combos,
        combination_exponents=combo_exps,
        standard_errors=se,
        cramer_rao=cr,
        alpha=alpha,
        n_measurements=len(ms),
        notes=notes,
    )


def _unscale_safe(v: float, scale: str) -> float:
    try:
        return unscale(v, scale)
    except OverflowError:
        return math.inf
