"""One call for ``scalebridge petab``: log-likelihood, multi-start fit, Fisher information,
profiles and the per-dataset analysis of a PEtab problem, in that order, each step starting from
the parameters the previous one found (the fit's best point, else the nominal values).

Files written with ``out_dir`` (each atomically, so an interrupted run never leaves a partial
file): ``fit_starts.csv``, ``waterfall.png``, ``fit.json``; ``fim.csv``, ``fim.png``;
``profiles.csv``, ``profiles.png``; ``datasets.json`` and the per-dataset plots; and
``report.json`` with everything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._io import atomic_write_text, json_safe
from .petab_problem import PetabProblem

__all__ = ["PetabReport", "run_petab_analysis"]


@dataclass
class PetabReport:
    """What ``scalebridge petab`` computed; :meth:`format` for people, :meth:`to_json` for
    programs."""

    problem: PetabProblem
    parameter_ids: list[str]
    x: np.ndarray
    llh: float | None = None
    chi2: float | None = None
    fit: Any = None
    fim: Any = None
    profile: Any = None
    datasets: Any = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.llh is not None:
            out["llh"] = self.llh
            out["chi2"] = self.chi2
        out["parameters"] = {
            p: {"scale": self.problem.parameter_scales[p], "value": float(v)}
            for p, v in zip(self.parameter_ids, self.x, strict=True)
        }
        for key in ("fit", "fim", "profile", "datasets"):
            part = getattr(self, key)
            if part is not None:
                out[key] = part.to_dict()
        if self.files:
            out["files"] = list(self.files)
        result: dict[str, Any] = json_safe(out)
        return result

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def format(self) -> str:
        lines: list[str] = []
        if self.llh is not None:
            lines.append(f"llh  {self.llh:.10g}\nchi2 {self.chi2:.10g}")
        if self.fit is not None:
            f = self.fit
            n_best = f.n_converged_to_best()
            lines.append(
                f"fit: best -llh {f.nllh_best:.8g} from {len(f.starts)} starts "
                f"({n_best} reached it within 0.1)"
            )
            lines.append(f.table().head(10).to_string(index=False))
        if self.fit is not None or self.profile is not None or self.fim is not None:
            lines.append("parameters (parameter scale, linear value):")
            for p, v in zip(self.parameter_ids, self.x, strict=True):
                sc = self.problem.parameter_scales[p]
                lin = _unscale(float(v), sc)
                lines.append(f"  {p:<24} {sc:<6} {v:>14.6g}  {lin:>14.6g}")
        if self.fim is not None:
            lines.append("Fisher information:")
            lines.append(self.fim.table().to_string(index=False))
            lines.append(
                f"  rank {self.fim.rank} of {len(self.parameter_ids)}, "
                f"condition number {self.fim.condition_number:.3g}"
            )
            for u in self.fim.unseen:
                lines.append(f"  unseen: {u}")
        if self.profile is not None:
            lines.append("profile likelihoods:")
            lines.append(self.profile.table().to_string(index=False))
        if self.datasets is not None:
            lines.append(self.datasets.format())
        if self.files:
            lines.append("wrote: " + ", ".join(self.files))
        return "\n".join(lines)


def _unscale(v: float, scale: str) -> float:
    from .petab_problem import unscale

    return unscale(v, scale)


def run_petab_analysis(
    problem: PetabProblem,
    *,
    llh: bool = True,
    fit: bool = False,
    starts: int = 10,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    fim: bool = False,
    profile: bool = False,
    datasets: bool = False,
    alpha: float = 0.95,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> PetabReport:
    """Run the requested analyses (see the module docstring) and return a :class:`PetabReport`."""
    from .petab_gradient import PetabGradient

    out = os.fspath(out_dir) if out_dir is not None else None
    if out is not None:
        os.makedirs(out, exist_ok=True)
    x = np.asarray(problem.x_nominal, dtype=np.float64)
    rep = PetabReport(problem=problem, parameter_ids=list(problem.estimated_ids), x=x)
    objective = PetabGradient(problem) if (fit or fim or profile) else None

    def path(name: str) -> str | None:
        if out is None:
            return None
        p = os.path.join(out, name)
        rep.files.append(p)
        return p

    if fit:
        from .estimate import fit as run_fit

        res = run_fit(
            problem,
            starts=starts,
            seed=seed,
            x0=problem.x_nominal,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            objective=objective,
        )
        rep.fit = res
        rep.x = np.asarray(res.x_best, dtype=np.float64)
        if (p := path("fit_starts.csv")) is not None:
            atomic_write_text(p, res.table().to_csv(index=False))
        if (p := path("waterfall.png")) is not None:
            res.waterfall(p)
    if llh:
        ev = problem.evaluate(rep.x)
        rep.llh, rep.chi2 = ev.llh, ev.chi2
    if fim:
        from .fim import fisher_information

        rep.fim = fisher_information(problem, rep.x, objective=objective, alpha=alpha)
        if (p := path("fim.csv")) is not None:
            atomic_write_text(p, rep.fim.table().to_csv(index=False))
        if (p := path("fim.png")) is not None:
            rep.fim.plot(p)
    if profile:
        from .profile import profile_likelihood

        rep.profile = profile_likelihood(
            problem,
            rep.x,
            alpha=alpha,
            objective=objective,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
        )
        if (p := path("profiles.csv")) is not None:
            atomic_write_text(p, rep.profile.table().to_csv(index=False))
        if (p := path("profiles.png")) is not None:
            rep.profile.plot(p)
    if datasets:
        from .practical import practical_identifiability

        rep.datasets = practical_identifiability(
            problem, rep.x, alpha=alpha, workers=workers, progress=progress
        )
        if out is not None:
            rep.datasets.plot(out)
            if (p := path("datasets.json")) is not None:
                atomic_write_text(p, json.dumps(json_safe(rep.datasets.to_dict()), indent=2))
    if (p := path("report.json")) is not None:
        atomic_write_text(p, rep.to_json())
    return rep
