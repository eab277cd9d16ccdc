"""Structural identifiability for data from several scales, and which measurement to add.

A multiscale problem has several datasets -- a molecular-scale assay, a cell-scale readout, a
tissue-scale measurement -- that share one parameter vector.
:func:`identifiability_across_datasets` analyses each dataset alone and all of them together, and
:func:`suggest_measurements` says which additional measurement would make a non-identifiable
parameter identifiable.

Datasets are sets of outputs of one model.  With ``experiments="separate"`` (the default) each
dataset is its own experiment: the combined problem holds one copy of the states (with their
own unknown initial values) and of the time-varying inputs per dataset, and shares the
parameters -- states and inputs of dataset ``d`` are named ``<name>_<d>`` in it.  With
``experiments="shared"`` all outputs are observed in the same experiment.

Suggestions use the exact local rank test only (fast): a candidate measurement -- by default each
state of the model, and a direct measurement of each non-identifiable parameter (for example its
value from an experiment at another scale) -- is added as one more output, and the parameters
that become identifiable are listed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError, OptionError
from ..model.expr import Expr, Sym, substitute, to_infix
from ..model.odetext import OdeModel
from .structural import (
    DEFAULT_BUDGET,
    IdentifiabilityResult,
    _as_ode_model,
    structural_identifiability,
    with_outputs,
)

__all__ = [
    "DatasetsResult",
    "MeasurementSuggestion",
    "identifiability_across_datasets",
    "suggest_measurements",
]

DatasetSpec = Sequence[str] | Mapping[str, Expr | str]


@dataclass(frozen=True)
class MeasurementSuggestion:
    """Adding ``expression`` (named ``measurement``) as an output of ``dataset`` (None: a
    new experiment of its own in the combined problem) makes ``makes_identifiable`` identifiable;
    ``still_non_identifiable`` lists the parameters it leaves."""

    dataset: str | None
    measurement: str
    expression: Expr
    makes_identifiable: tuple[str, ...]
    still_non_identifiable: tuple[str, ...]

    @property
    def text(self) -> str:
        where = f"to '{self.dataset}'" if self.dataset else "as a new experiment"
        return (
            f"add {self.measurement} = {to_infix(self.expression)} {where}: identifies "
            f"{', '.join(self.makes_identifiable)}"
            + (
                f" (still non-identifiable: {', '.join(self.still_non_identifiable)})"
                if self.still_non_identifiable
                else ""
            )
        )


@dataclass(frozen=True)
class DatasetsResult:
    """Per-dataset and combined identifiability, and suggested measurements."""

    datasets: dict[str, IdentifiabilityResult]
    combined: IdentifiabilityResult
    suggestions: tuple[MeasurementSuggestion, ...]
    experiments: str

    def table(self) -> str:
        """Parameter labels, one column per dataset and one for the combined problem."""
        names = list(self.combined.parameters)
        cols = [*self.datasets, "combined"]
        res = [*self.datasets.values(), self.combined]
        w0 = max([len(n) for n in names] + [9])
        widths = [max(len(c), 20) for c in cols]
        head = (
            "parameter".ljust(w0)
            + "  "
            + "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
        )
        lines = [head]
        for n in names:
            row = [r.parameters.get(n, "-") for r in res]
            lines.append(
                n.ljust(w0) + "  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
            )
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiments": self.experiments,
            "datasets": {d: r.to_dict() for d, r in self.datasets.items()},
            "combined": self.combined.to_dict(),
            "suggestions": [
                {
                    "dataset": s.dataset,
                    "measurement": s.measurement,
                    "expression": to_infix(s.expression),
                    "makes_identifiable": list(s.makes_identifiable),
                    "still_non_identifiable": list(s.still_non_identifiable),
                }
                for s in self.suggestions
            ],
        }


def _suffix(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s or "d"


def _dataset_outputs(om: OdeModel, spec: DatasetSpec, name: str) -> dict[str, Expr]:
    if isinstance(spec, str):
        spec = [spec]
    try:
        return dict(with_outputs(om, spec).outputs)
    except ModelError as e:
        raise ModelError(f"dataset '{name}': {e}", source=om.source) from None


def _combined_model(
    om: OdeModel, outs: Mapping[str, Mapping[str, Expr]], experiments: str
) -> OdeModel:
    if experiments == "shared":
        merged: dict[str, Expr] = {}
        for d, o in outs.items():
            for y, e in o.items():
                key = y if y not in merged or merged[y] == e else f"{y}_{_suffix(d)}"
                merged[key] = e
        return om.replace(outputs=merged)
    taken = set(om.symbols) | set(om.outputs)
    states: list[str] = []
    equations: dict[str, Expr] = {}
    outputs: dict[str, Expr] = {}
    inputs: list[str] = []
    unknown_inputs: list[str] = []
    initial: dict[str, float | Expr | None] = {}

    def fresh(base: str) -> str:
        nm, i = base, 1
        while nm in taken:
            i += 1
            nm = f"{base}_{i}"
        taken.add(nm)
        return nm

    for d, o in outs.items():
        sfx = _suffix(d)
        ren = {s: fresh(f"{s}_{sfx}") for s in om.states}
        ren.update({u: fresh(f"{u}_{sfx}") for u in (*om.inputs, *om.unknown_inputs)})
        sub = {k: Sym(v) for k, v in ren.items()}
        for s in om.states:
            states.append(ren[s])
            equations[ren[s]] = substitute(om.equations[s], sub)
            if s in om.initial:
                initial[ren[s]] = om.initial[s]
        inputs += [ren[u] for u in om.inputs]
        unknown_inputs += [ren[u] for u in om.unknown_inputs]
        for y, e in o.items():
            outputs[fresh(f"{y}_{sfx}")] = substitute(e, sub)
    return OdeModel(
        states=tuple(states),
        equations=equations,
        outputs=outputs,
        parameters=om.parameters,
        known=dict(om.known),
        inputs=tuple(inputs),
        unknown_inputs=tuple(unknown_inputs),
        initial=initial,
        source=om.source,
    )


def _default_candidates(om: OdeModel, res: IdentifiabilityResult) -> dict[str, Expr]:
    cands: dict[str, Expr] = {}
    for s in om.states:
        cands[s] = Sym(s)
    for p, lab in res.parameters.items():
        if lab == "non-identifiable" and p not in cands:
            cands[p] = Sym(p)
    return cands


def _parse_candidates(om: OdeModel, candidates: Mapping[str, Expr | str]) -> dict[str, Expr]:
    probe = with_outputs(om, dict(candidates))
    return dict(probe.outputs)


def suggest_measurements(
    model: Any,
    *,
    outputs: DatasetSpec | None = None,
    candidates: Mapping[str, Expr | str] | None = None,
    seed: int | None = 0,
    _base: IdentifiabilityResult | None = None,
    _dataset: str | None = None,
) -> list[MeasurementSuggestion]:
    """Which single added measurement makes which non-identifiable parameters identifiable.

    ``candidates``: name -> expression (text or Expr) of possible measurements; by default every
    state and every non-identifiable parameter.  Returns the helpful candidates, most helpful
    first (local rank test only)."""
    om = _as_ode_model(model, outputs)
    base = _base or structural_identifiability(om, time_budget=0, combinations=False, seed=seed)
    nonid = [p for p, lab in base.parameters.items() if lab == "non-identifiable"]
    if not nonid:
        return []
    cands = (
        _default_candidates(om, base) if candidates is None else _parse_candidates(om, candidates)
    )
    out: list[MeasurementSuggestion] = []
    for name, expr in cands.items():
        yname = f"m_{name}"
        while yname in om.outputs or yname in om.symbols:
            yname += "_"
        trial = om.replace(outputs={**om.outputs, yname: expr})
        res = structural_identifiability(trial, time_budget=0, combinations=False, seed=seed)
        gained = tuple(p for p in nonid if res.parameters[p] != "non-identifiable")
        if gained:
            left = tuple(p for p in nonid if p not in gained)
            out.append(MeasurementSuggestion(_dataset, name, expr, gained, left))
    out.sort(key=lambda s: (-len(s.makes_identifiable), s.measurement))
    return out


def identifiability_across_datasets(
    model: Any,
    datasets: Mapping[str, DatasetSpec],
    *,
    candidates: Mapping[str, Expr | str] | None = None,
    experiments: str = "separate",
    time_budget: float = DEFAULT_BUDGET,
    combinations: bool = True,
    seed: int | None = 0,
) -> DatasetsResult:
    """Structural identifiability of ``model`` for each dataset alone and all combined, with
    suggested measurements.

    ``datasets``: dataset name -> the outputs it observes (names of model outputs, or output
    name -> expression).  ``experiments``: 'separate' (each dataset its own experiment with its
    own initial values and inputs; parameters shared) or 'shared' (one experiment).
    ``candidates``: possible added measurements (see :func:`suggest_measurements`); suggestions
    are made for every dataset alone and for the combined problem."""
    if experiments not in ("separate", "shared"):
        raise OptionError(f"experiments must be 'separate' or 'shared', got {experiments!r}")
    if not datasets:
        raise OptionError("no datasets given")
    om = _as_ode_model(model, None, require_outputs=False)
    outs = {d: _dataset_outputs(om, spec, d) for d, spec in datasets.items()}
    per: dict[str, IdentifiabilityResult] = {}
    suggestions: list[MeasurementSuggestion] = []
    for d, o in outs.items():
        m = om.replace(outputs=o)
        per[d] = structural_identifiability(
            m, time_budget=time_budget, combinations=combinations, seed=seed
        )
        suggestions += suggest_measurements(m, candidates=candidates, seed=seed, _dataset=d)
    combined_model = _combined_model(om, outs, experiments)
    combined = structural_identifiability(
        combined_model, time_budget=time_budget, combinations=combinations, seed=seed
    )
    nonid = [p for p, lab in combined.parameters.items() if lab == "non-identifiable"]
    if nonid:
        cands = (
            _default_candidates(om, combined)
            if candidates is None
            else _parse_candidates(om, candidates)
        )
        # A new experiment observing only the candidate.
        for name, expr in cands.items():
            extra = {**outs, f"new_{name}": {f"m_{name}": expr}}
            trial = _combined_model(om, extra, "separate")
            res = structural_identifiability(trial, time_budget=0, combinations=False, seed=seed)
            gained = tuple(p for p in nonid if res.parameters[p] != "non-identifiable")
            if gained:
                left = tuple(p for p in nonid if p not in gained)
                suggestions.append(MeasurementSuggestion(None, name, expr, gained, left))
    return DatasetsResult(per, combined, tuple(suggestions), experiments)
