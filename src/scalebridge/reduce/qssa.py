"""Quasi-steady-state (singular-perturbation) reduction of a reaction network.

:func:`reduce` takes a network, a time window and optionally the fast variables, and

1. simulates the full model and finds the timescale split along its trajectory
   (:mod:`scalebridge.reduce.timescales`): the number of fast modes from the eigenvalue gap, the
   ratio ``eps(t) = |lambda_slow|/|lambda_fast|``, and the fast variables by participation;
2. computes the critical manifold ``y = h(x)`` of the fast subsystem, numerically along the
   trajectory and in closed form where sympy finds one (:mod:`scalebridge.reduce.manifold`);
3. checks that the manifold is attracting (eigenvalues of ``df/dy``, on the fast conservation
   laws' surface, with negative real parts) wherever the trajectory goes, and that the chosen
   fast variables carry the fast modes (the reduction changes the slow eigenvalues by at most
   ``max_split_error``, relatively);
4. returns the reduced slow flow ``dx/dt = g(x, h(x))`` as new networks, and a report of its
   error against the full model after the initial layer.

It refuses (:class:`~scalebridge.reduce.timescales.ReductionRefused`, with the numbers) when
``eps`` exceeds ``max_eps``, when the split error exceeds ``max_split_error``, when the manifold
is unstable, and when it folds (the branch ends) or does not exist along the trajectory.

The reduced networks
--------------------
Both keep every slow variable with its initial value and make every fast species a boundary
species set by an assignment rule ``y := h(x)`` (SBML requires ``boundaryCondition`` for a
species that a rule sets and reactions use); a fast rate-rule variable gets an assignment rule
instead of its rate rule.  Conserved totals the fast laws need become parameters (named
``<species>_total``) unless the initial values already give them as an expression of
parameters (``R = R_T`` gives ``R + C = R_T``).

* ``network_rules`` keeps every reaction: the slow species change by all reactions' effects,
  evaluated on the manifold.  Deterministically this is ``g(x, h(x))`` exactly.
* ``network`` (the collapsed form) replaces the reactions by net reactions that leave the fast
  species unchanged.  On the manifold the rates satisfy ``N_y v = 0``, so ``v = B v_free`` with
  ``B`` a basis of ``ker N_y`` that is the identity on a set of free reactions (the least active
  ones, so that no net reaction is a small difference of large fluxes); net reaction ``k`` has
  stoichiometry ``N_x B[:, k]`` and rate ``v_free_k(x, h(x))``, and net reactions that change no
  slow species (futile cycles such as bind + unbind) are dropped.  Deterministically it equals
  the rules form; it is the form to use with the stochastic methods (ssa, cle, ...), where the
  rules form would add the fast reactions' noise to the slow species.  A net rate of Michaelis-
  Menten form ``a*S/(b*S + d)`` in its single reactant ``S`` is written ``Vmax_<id>*S/(Km_<id> +
  S)`` with parameters set by assignment rules in the molecular constants.

Both are ordinary :class:`~scalebridge.model.network.ReactionNetwork` objects: simulate them with
:func:`scalebridge.simulate`, write them with :func:`scalebridge.model.sbml.write_sbml`.  When
the manifold has no closed form they do not exist (the reduction object says why); the error
report is then computed by integrating the slow flow with ``h`` from Newton's method.

Error report
------------
Full and reduced model are simulated on the same grid; the slow variables (states: species
amounts, rate-rule variables) are compared from the end of the initial layer (``n_layer`` time
constants of the slowest fast mode) to the end of the window: the largest absolute error, and
relative to the largest magnitude of the variable over that part of the window.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.linalg as sla
import sympy

from ..codegen import vm
from ..errors import OptionError, SolverError, UnsupportedFeatureError
from ..model.conservation import stoichiometry_matrix
from ..model.expr import Call, Expr, Num, Sym, expand_functions, substitute, symbols
from ..model.network import (
    AssignmentRule,
    Parameter,
    Reaction,
    ReactionNetwork,
    SpeciesRef,
)
from ..model.symbolic import from_sympy, sym, to_sympy
from .manifold import (
    CriticalManifold,
    FastSubsystem,
    ManifoldSamples,
    StabilityReport,
    continue_manifold,
    fast_kernel,
    stability_along,
    symbolic_manifold,
)
from .timescales import (
    DEFAULT_LAYER_TIME_CONSTANTS,
    DEFAULT_PARTICIPATION_MIN,
    ReductionRefused,
    TimescaleReport,
    Trajectory,
    analyze_timescales,
    sample_trajectory,
)

__all__ = [
    "MichaelisMenten",
    "Reduction",
    "ReductionErrorReport",
    "michaelis_menten_form",
    "receptor_uptake",
    "reduce",
]

RECEPTOR_MODEL = "receptor_uptake.ant"


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------
@dataclass
class ReductionErrorReport:
    """Error of the reduced model's slow variables against the full model, after the layer.

    ``max_abs[v]`` is ``max_t |x_red(t) - x_full(t)|`` over ``t >= layer_end`` (states: species
    amounts, rate-rule variables); ``max_rel[v]`` that divided by ``max_t |x_full(t)|`` over the
    same times.  ``fast_residual[y]`` is ``max_t |y_full(t) - h(x_full(t))|`` over the same
    times relative to ``max_t |y_full|``: how close the full trajectory stays to the manifold.
    ``eps_max`` is the largest timescale ratio after the layer, ``eps_max_all`` over the whole
    window, ``split_error_max`` the largest relative change of the slow eigenvalues.
    """

    layer_end: float
    layer_time_constants: float
    t_end: float
    n_compared: int
    max_abs: dict[str, float]
    max_rel: dict[str, float]
    fast_residual: dict[str, float]
    eps_max: float
    eps_max_all: float
    split_error_max: float
    reduced_by: str

    @property
    def max_rel_error(self) -> float:
        return max(self.max_rel.values(), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer_end": self.layer_end,
            "layer_time_constants": self.layer_time_constants,
            "t_end": self.t_end,
            "n_compared": self.n_compared,
            "max_abs": dict(self.max_abs),
            "max_rel": dict(self.max_rel),
            "max_rel_error": self.max_rel_error,
            "fast_residual": dict(self.fast_residual),
            "eps_max": self.eps_max,
            "eps_max_all": self.eps_max_all,
            "split_error_max": self.split_error_max,
            "reduced_by": self.reduced_by,
        }

    def summary(self) -> str:
        lines = [
            f"reduction error (slow variables, t from {self.layer_end:g} = end of the initial "
            f"layer, {self.layer_time_constants:g} fast time constants, to {self.t_end:g}; "
            f"{self.n_compared} samples; reduced model run by {self.reduced_by}):",
        ]
        for k in self.max_abs:
            lines.append(f"  {k}: max abs {self.max_abs[k]:.4g}, max rel {self.max_rel[k]:.3g}")
        for k, v in self.fast_residual.items():
            lines.append(f"  fast {k}: full trajectory within {v:.3g} (relative) of h")
        lines.append(
            f"  eps after the layer <= {self.eps_max:.3g} (whole window {self.eps_max_all:.3g}); "
            f"slow eigenvalues changed by <= {self.split_error_max:.3g}"
        )
        return "\n".join(lines)

    __str__ = summary


@dataclass
class MichaelisMenten:
    """A net rate ``V_max*S/(K_m + S)`` found in the collapsed model (sympy and tree forms)."""

    reaction: str
    substrate: str
    V_max: Any
    K_m: Any
    V_max_value: float
    K_m_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "reaction": self.reaction,
            "substrate": self.substrate,
            "V_max": str(self.V_max),
            "K_m": str(self.K_m),
            "V_max_value": self.V_max_value,
            "K_m_value": self.K_m_value,
        }

    def __str__(self) -> str:
        return (
            f"{self.reaction}: u({self.substrate}) = V_max*{self.substrate}/(K_m + "
            f"{self.substrate}), V_max = {self.V_max} = {self.V_max_value:.6g}, K_m = "
            f"{self.K_m} = {self.K_m_value:.6g}"
        )


@dataclass
class Reduction:
    """The result of :func:`reduce` (see the module docstring).

    ``network`` (collapsed) and ``network_rules`` are None when the manifold is numerical
    only; ``why_not_exportable`` says why.  ``dropped`` lists the futile net reactions left out
    of the collapsed form.
    """

    full: ReactionNetwork
    timescales: TimescaleReport
    manifold: CriticalManifold
    stability: StabilityReport
    network: ReactionNetwork | None
    network_rules: ReactionNetwork | None
    error: ReductionErrorReport | None
    michaelis_menten: list[MichaelisMenten] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    net_reactions: dict[str, str] = field(default_factory=dict)
    samples: ManifoldSamples | None = field(default=None, repr=False)

    @property
    def fast(self) -> list[str]:
        return list(self.manifold.fast)

    @property
    def slow(self) -> list[str]:
        return list(self.manifold.slow)

    @property
    def exportable(self) -> bool:
        return self.network is not None

    @property
    def why_not_exportable(self) -> str:
        if self.network is not None:
            return ""
        return (
            "the critical manifold has no closed form (" + self.manifold.why_numeric + "): "
            "the reduced model exists only numerically (h by Newton's method) and cannot be "
            "written as SBML or run by the simulation methods"
        )

    def model(self, form: str = "collapsed") -> ReactionNetwork:
        """The reduced network in ``form`` ``"collapsed"`` or ``"rules"``; raises
        :class:`UnsupportedFeatureError` when there is none."""
        if form not in ("collapsed", "rules"):
            raise OptionError(f"form must be 'collapsed' or 'rules', not {form!r}")
        net = self.network if form == "collapsed" else self.network_rules
        if net is None:
            raise UnsupportedFeatureError(
                "export of a numerical critical manifold",
                element=", ".join(self.fast),
                source=self.full.source,
                detail=self.why_not_exportable,
            )
        return net

    def write_sbml(self, path: str | os.PathLike[str], form: str = "collapsed") -> None:
        """Write the reduced model as SBML (atomically)."""
        from ..model.sbml import write_sbml

        write_sbml(self.model(form), path)

    def to_dict(self) -> dict[str, Any]:
        red = self.network
        return {
            "model": self.full.id,
            "fast": self.fast,
            "slow": self.slow,
            "n_fast_modes": self.timescales.n_fast,
            "eps_max": self.timescales.eps_max,
            "layer_end": self.timescales.layer_end,
            "timescales": self.timescales.to_dict(),
            "manifold": self.manifold.to_dict(),
            "stability": self.stability.to_dict(),
            "error": None if self.error is None else self.error.to_dict(),
            "michaelis_menten": [m.to_dict() for m in self.michaelis_menten],
            "reduced_model": {
                "exportable": self.exportable,
                "why_not": self.why_not_exportable,
                "id": None if red is None else red.id,
                "reactions": {} if red is None else _reaction_texts(red),
                "net_reactions": dict(self.net_reactions),
                "dropped_futile": list(self.dropped),
            },
        }

    def summary(self) -> str:
        parts = [
            f"QSSA reduction of '{self.full.id}': fast {', '.join(self.fast)}; slow "
            f"{', '.join(self.slow)}",
            self.timescales.summary(),
            self.manifold.summary(),
            self.stability.summary(),
        ]
        if self.network is not None:
            lines = [f"reduced model '{self.network.id}' (collapsed form):"]
            lines += [f"  {k}: {v}" for k, v in _reaction_texts(self.network).items()]
            if self.dropped:
                lines.append(f"  dropped futile cycles: {', '.join(self.dropped)}")
            parts.append("\n".join(lines))
        else:
            parts.append("reduced model: " + self.why_not_exportable)
        if self.michaelis_menten:
            parts.append("\n".join(f"Michaelis-Menten law {m}" for m in self.michaelis_menten))
        if self.error is not None:
            parts.append(self.error.summary())
        return "\n".join(parts)

    __str__ = summary


def _reaction_texts(net: ReactionNetwork) -> dict[str, str]:
    out = {}
    for r in net.reactions:

        def side(refs: Sequence[SpeciesRef]) -> str:
            return (
                " + ".join(
                    (f"{_num(x.stoichiometry)} {x.species}" if x.stoichiometry != 1 else x.species)
                    for x in refs
                )
                or "0"
            )

        out[r.id] = f"{side(r.reactants)} -> {side(r.products)}; {r.rate}"
    return out


def _num(x: float | None) -> str:
    return "?" if x is None else f"{x:g}"


# ---------------------------------------------------------------------------------------------
# The reduction
# ---------------------------------------------------------------------------------------------
def reduce(
    model: ReactionNetwork,
    fast: Iterable[str] | str | None = None,
    *,
    t_end: float,
    n_points: int = 201,
    t0: float = 0.0,
    params: Mapping[str, float] | None = None,
    max_eps: float = 0.1,
    max_split_error: float = 0.1,
    participation_min: float = DEFAULT_PARTICIPATION_MIN,
    layer_time_constants: float = DEFAULT_LAYER_TIME_CONSTANTS,
    symbolic: bool = True,
    error_report: bool = True,
    rtol: float = 1e-10,
    atol: float = 1e-14,
) -> Reduction:
    """Reduce the fast variables of ``model`` to their critical manifold (module docstring).

    ``fast`` names the fast variables (species ids that reactions change or rate-rule
    variables; a comma-separated string is accepted); None detects them.  The full model runs
    from ``t0`` to ``t_end`` and is sampled at ``n_points`` times.  ``params`` overrides
    parameter values, compartment sizes and initial values.  ``symbolic=False`` skips sympy.
    ``rtol``/``atol`` are the integrators' tolerances.
    """
    if isinstance(fast, str):
        fast = [s.strip() for s in fast.split(",") if s.strip()]
    if not (max_eps > 0 and max_split_error > 0):
        raise OptionError("max_eps and max_split_error must be positive")
    if n_points < 3:
        raise OptionError(f"n_points must be at least 3, got {n_points}")
    if not t_end > t0:
        raise OptionError(f"t_end must exceed t0, got t_end = {t_end}, t0 = {t0}")
    net = model.with_values(params) if params else model
    times = np.linspace(float(t0), float(t_end), int(n_points))
    traj = sample_trajectory(net, times, rtol=rtol, atol=atol)
    ts = analyze_timescales(
        traj,
        fast=None if fast is None else list(fast),
        participation_min=participation_min,
        layer_time_constants=layer_time_constants,
    )
    _check_split(ts)
    _check_eps(ts, max_eps)
    fs = FastSubsystem.build(traj, ts.fast, [{traj.index(k): c for k, c in law.items()}
                                              for law in ts.fast_laws])  # fmt: skip
    start = int(np.searchsorted(traj.times, ts.layer_end))
    start = min(start, traj.times.size - 1)
    ms = continue_manifold(fs, start)
    kernel = _kernel(net, traj, fs, start)
    stab = stability_along(fs, ms, kernel.reduced_space, ts.n_fast)
    _check_stability(fs, stab)
    _check_split_error(fs, ts, stab, max_split_error)
    if symbolic:
        man = symbolic_manifold(net, fs, ms)
    else:
        man = CriticalManifold(
            fs.fast, fs.slow, None, None, {}, [], "numeric", "symbolic solution not requested"
        )
    rules_net = collapsed = None
    mm: list[MichaelisMenten] = []
    dropped: list[str] = []
    net_texts: dict[str, str] = {}
    if man.expressions is not None:
        rules_net = _rules_network(net, man, traj)
        collapsed, mm, dropped, net_texts = _collapsed_network(net, man, traj, fs, kernel)
    err = None
    if error_report:
        err = _error_report(traj, fs, ms, ts, stab, collapsed, rtol, atol)
    return Reduction(
        full=net,
        timescales=ts,
        manifold=man,
        stability=stab,
        network=collapsed,
        network_rules=rules_net,
        error=err,
        michaelis_menten=mm,
        dropped=dropped,
        net_reactions=net_texts,
        samples=ms,
    )


# -- refusals ---------------------------------------------------------------------------------
def _participation_text(ts: TimescaleReport) -> str:
    items = sorted(ts.participation.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.3g}" for k, v in items)


def _check_split(ts: TimescaleReport) -> None:
    if ts.consistent:
        return
    raise ReductionRefused(
        f"the timescales do not split by variables: {ts.problem} (participation in the fast "
        f"modes: {_participation_text(ts)}); declare the fast variables to check a choice",
        reason="split",
        details={"participation": ts.participation, "n_fast": ts.n_fast},
    )


def _check_eps(ts: TimescaleReport, max_eps: float) -> None:
    if ts.eps_max <= max_eps:
        return
    i = ts.eps_argmax
    lam_f, lam_s = complex(ts.lambda_fast[i]), complex(ts.lambda_slow[i])
    raise ReductionRefused(
        f"no timescale separation: eps = |lambda_slow|/|lambda_fast| reaches {ts.eps_max:.3g} "
        f"(> {max_eps:g}) at t = {ts.times[i]:g}, where the slowest fast mode has eigenvalue "
        f"{_c(lam_f)} and the fastest slow mode {_c(lam_s)} (fast: {', '.join(ts.fast)}; "
        f"{ts.n_fast} fast mode(s))",
        reason="no_separation",
        details={
            "eps_max": ts.eps_max,
            "time": float(ts.times[i]),
            "lambda_fast": [lam_f.real, lam_f.imag],
            "lambda_slow": [lam_s.real, lam_s.imag],
            "max_eps": max_eps,
        },
    )


def _check_stability(fs: FastSubsystem, stab: StabilityReport) -> None:
    if stab.stable:
        return
    i = stab.worst_index
    first = stab.first_unstable
    assert first is not None
    where = ", ".join(f"{k} = {v:.6g}" for k, v in stab.where().items())
    first_where = ", ".join(
        f"{k} = {v:.6g}" for k, v in zip(stab.names, stab.states[first], strict=True)
    )
    raise ReductionRefused(
        f"the critical manifold is unstable: df/dy of the fast variables "
        f"({', '.join(fs.fast)}) has eigenvalues with non-negative real part from t = "
        f"{stab.times[first]:g} ({first_where}); the worst, {_c(stab.worst_eigenvalue)}, at "
        f"t = {stab.times[i]:g} ({where}); the fast variables move away from it",
        reason="unstable",
        details={"time": float(stab.times[i]), "state": stab.where(),
                 "first_time": float(stab.times[first]),
                 "eigenvalue": [stab.worst_eigenvalue.real, stab.worst_eigenvalue.imag]},
    )  # fmt: skip


def _check_split_error(
    fs: FastSubsystem, ts: TimescaleReport, stab: StabilityReport, max_split_error: float
) -> None:
    err = stab.split_error_max
    if err <= max_split_error:
        return
    i = int(np.argmax(stab.split_error))
    leak = {k: v for k, v in ts.participation.items() if k not in fs.fast}
    worst = max(leak, key=lambda k: leak[k]) if leak else None
    why = (
        f"; slow variable {worst} takes part in the fast modes with participation {leak[worst]:.3g}"
        if worst is not None
        else ""
    )
    raise ReductionRefused(
        f"the fast variables ({', '.join(fs.fast)}) do not carry the fast modes: the reduction "
        f"changes a slow eigenvalue by {err:.3g} (relative, > {max_split_error:g}) at t = "
        f"{stab.times[i]:g}{why}; a variable-wise quasi-steady state does not hold here",
        reason="split",
        details={"split_error_max": err, "time": float(stab.times[i]),
                 "participation": ts.participation},
    )  # fmt: skip


def _c(x: complex) -> str:
    x = complex(x)
    return f"{x.real:.4g}" if x.imag == 0 else f"{x.real:.4g}{x.imag:+.4g}i"


# -- exact stoichiometry: net reactions --------------------------------------------------------
@dataclass
class _Kernel:
    species: list[str]  # reaction-changed species (rows of N)
    reactions: list[str]
    N: list[list[Fraction]]
    fast_rows: list[int]
    slow_rows: list[int]
    free: list[int]
    B: list[list[Fraction]]
    reduced_space: np.ndarray  # orthonormal, over fs.slow_idx


def _kernel(net: ReactionNetwork, traj: Trajectory, fs: FastSubsystem, start: int) -> _Kernel:
    species, reactions, Nf = stoichiometry_matrix(net)
    dense = Nf.toarray()
    N = [[Fraction(repr(float(x))) for x in row] for row in dense]
    fast_set = set(fs.fast)
    fast_rows = [i for i, s in enumerate(species) if s in fast_set]
    slow_rows = [i for i, s in enumerate(species) if s not in fast_set]
    activity = _reaction_activity(traj, start)
    order = sorted(range(len(reactions)), key=lambda j: (-activity[j], j))
    _, free, B = fast_kernel([N[i] for i in fast_rows], order)
    # The reduced model moves in span{N_x B} for slow species (amount rates carry the
    # conversion factors) and freely in its slow rate-rule variables.
    row_of = {s: i for i, s in enumerate(species)}
    cols = len(free)
    M = np.zeros((len(fs.slow_idx), max(cols, 0)))
    extra: list[np.ndarray] = []
    for a, si in enumerate(fs.slow_idx):
        name = traj.names[si]
        key = traj.cm.state_keys[si]
        if key.startswith("A#") and name in row_of:
            cf = _cf(net, name)
            i = row_of[name]
            for k in range(cols):
                M[a, k] = cf * float(sum(N[i][j] * B[j][k] for j in range(len(reactions))))
        else:
            e = np.zeros(len(fs.slow_idx))
            e[a] = 1.0
            extra.append(e)
    full = np.column_stack([M, *extra]) if extra else M
    space = sla.orth(full) if full.size else np.zeros((len(fs.slow_idx), 0))
    return _Kernel(species, reactions, N, fast_rows, slow_rows, free, B, space)


def _cf(net: ReactionNetwork, sid: str) -> float:
    name = net.species_map[sid].conversion_factor or net.conversion_factor
    if name is None:
        return 1.0
    p = net.parameter_map.get(name)
    return 1.0 if p is None or p.value is None else float(p.value)


def _reaction_activity(traj: Trajectory, start: int) -> list[float]:
    """Mean |rate| of each reaction over the samples after the initial layer."""
    cm, net = traj.cm, traj.network
    K = cm.kernel
    stack = vm.new_stack(K)
    total = np.zeros(len(net.reactions))
    rows = range(start, traj.times.size)
    for i in rows:
        vm.evaluate_all(K, float(traj.times[i]), traj.states[i].copy(), traj.v, stack)
        total += np.abs([traj.v[cm.slots[r.id]] for r in net.reactions])
    return list(total / max(len(rows), 1))


# -- reduced networks -------------------------------------------------------------------------
def _fast_species_to_rules(
    net: ReactionNetwork, man: CriticalManifold
) -> tuple[list, list[Parameter], list[AssignmentRule], list]:
    """Species, parameters, assignment rules and rate rules with the fast variables ruled."""
    assert man.expressions is not None
    fast = set(man.fast)
    species = []
    for s in net.species:
        if s.id in fast:
            s = replace(s, boundary_condition=True, initial_amount=None,
                        initial_concentration=None)  # fmt: skip
        species.append(s)
    params = []
    for p in net.parameters:
        if p.id in fast:
            p = replace(p, value=None, constant=False)
        params.append(p)
    for pid, value in man.totals.items():
        params.append(Parameter(pid, value, name="conserved total of the fast subsystem"))
    rules = list(net.assignment_rules) + [AssignmentRule(k, man.expressions[k]) for k in man.fast]
    rate_rules = [r for r in net.rate_rules if r.variable not in fast]
    return species, params, rules, rate_rules


def _note(net: ReactionNetwork, man: CriticalManifold, form: str) -> str:
    lines = [
        f"Quasi-steady-state reduction of model '{net.id}' by scalebridge ({form} form).",
        f"Fast variables: {', '.join(man.fast)}; slow: {', '.join(man.slow)}.",
        "Critical manifold:",
        *(f"  {k} = {v}" for k, v in (man.expressions or {}).items()),
        *(f"  {t}" for t in man.laws_text),
    ]
    return (net.notes + "\n\n" if net.notes else "") + "\n".join(lines)


def _rules_network(
    net: ReactionNetwork, man: CriticalManifold, traj: Trajectory
) -> ReactionNetwork:
    species, params, rules, rate_rules = _fast_species_to_rules(net, man)
    fast = set(man.fast)
    return net.replace(
        id=f"{net.id}_reduced",
        name=(net.name or net.id) + " (QSSA, rules form)",
        species=tuple(species),
        parameters=tuple(params),
        assignment_rules=tuple(rules),
        rate_rules=tuple(rate_rules),
        initial_assignments=tuple(a for a in net.initial_assignments if a.symbol not in fast),
        notes=_note(net, man, "rules"),
    )


def _collapsed_network(
    net: ReactionNetwork,
    man: CriticalManifold,
    traj: Trajectory,
    fs: FastSubsystem,
    kern: _Kernel,
) -> tuple[ReactionNetwork, list[MichaelisMenten], list[str], dict[str, str]]:
    assert man.expressions is not None
    species, params, rules, rate_rules = _fast_species_to_rules(net, man)
    fast = set(man.fast)
    h = dict(man.expressions)
    reactions: list[Reaction] = []
    dropped: list[str] = []
    texts: dict[str, str] = {}
    mm: list[MichaelisMenten] = []
    taken = {*net.species_map, *net.parameter_map, *net.compartment_map, *man.totals}
    env = _parameter_values(traj)
    env.update(man.totals)
    for k, f in enumerate(kern.free):
        rid = kern.reactions[f]
        base = net.reaction_map[rid]
        combo = {kern.reactions[j]: kern.B[j][k] for j in range(len(kern.reactions))
                 if kern.B[j][k] != 0}  # fmt: skip
        texts[rid] = " + ".join(
            (f"{_frac(c)}*{r}" if c != 1 else r) for r, c in combo.items()
        ).replace("+ -", "- ")
        stoich = {
            kern.species[i]: sum(kern.N[i][j] * kern.B[j][k] for j in range(len(kern.reactions)))
            for i in kern.slow_rows
        }
        stoich = {s: v for s, v in stoich.items() if v != 0}
        if not stoich:
            dropped.append(f"{rid} ({texts[rid]})")
            continue
        simplified = _collapsed_rate(net, base, h)
        if simplified is None:  # no symbolic form: the law as written, on the manifold
            rate = substitute(base.rate, h) if base.rate is not None else None
            local = base.local_parameters
        else:
            rate, local = simplified, ()
        reactants = tuple(SpeciesRef(s, float(-v)) for s, v in stoich.items() if v < 0)
        products = tuple(SpeciesRef(s, float(v)) for s, v in stoich.items() if v > 0)
        if simplified is not None and len(reactants) == 1 and reactants[0].stoichiometry == 1.0:
            found = _mm_rewrite(rid, reactants[0].species, simplified, net, taken, env)
            if found is not None:
                rate, mm_item, new_params, new_rules = found
                params.extend(new_params)
                rules.extend(new_rules)
                mm.append(mm_item)
        in_rate = symbols(rate) if rate is not None else set()
        sides = {r.species for r in (*reactants, *products)}
        modifiers = tuple(
            s.id for s in net.species
            if s.id in in_rate and s.id not in sides and s.id not in fast
        )  # fmt: skip
        reactions.append(
            Reaction(
                id=rid,
                reactants=reactants,
                products=products,
                modifiers=modifiers,
                rate=rate,
                local_parameters=local,
                reversible=base.reversible,
                compartment=base.compartment,
                name=f"net of {texts[rid]}",
            )
        )
    out = net.replace(
        id=f"{net.id}_reduced",
        name=(net.name or net.id) + " (QSSA)",
        species=tuple(species),
        parameters=tuple(params),
        reactions=tuple(reactions),
        assignment_rules=tuple(rules),
        rate_rules=tuple(rate_rules),
        initial_assignments=tuple(a for a in net.initial_assignments if a.symbol not in fast),
        notes=_note(net, man, "collapsed"),
    )
    return out, mm, dropped, texts


def _frac(c: Fraction) -> str:
    return str(c.numerator) if c.denominator == 1 else f"({c.numerator}/{c.denominator})"


def _parameter_values(traj: Trajectory) -> dict[str, float]:
    vals = traj.symbol_values(float(traj.times[0]), traj.states[0])
    net = traj.network
    return {k: v for k, v in vals.items() if k in net.parameter_map or k in net.compartment_map}


def _collapsed_rate(net: ReactionNetwork, r: Reaction, h: Mapping[str, Expr]) -> Expr | None:
    """The free reaction's law on the manifold, simplified by sympy (None: keep as written)."""
    if r.rate is None:
        return Num(0.0)
    law = expand_functions(r.rate, net.functions_table) if net.functions else r.rate
    law = substitute(law, {lp.id: Num(lp.value or 0.0) for lp in r.local_parameters})
    law = substitute(law, dict(h))
    try:
        s = to_sympy(law)
        s = sympy.nsimplify(s, rational=True)
        s = sympy.simplify(sympy.cancel(s)) if sympy.count_ops(s) <= 300 else sympy.cancel(s)
        return from_sympy(s)
    except UnsupportedFeatureError:
        return None


def michaelis_menten_form(rate: Any, substrate: str) -> tuple[Any, Any] | None:
    """``(V_max, K_m)`` when the sympy expression ``rate`` equals ``V_max*S/(K_m + S)`` in the
    symbol ``S`` = ``substrate`` with ``V_max`` and ``K_m`` free of it, else None."""
    S = sym(substrate)
    r = sympy.cancel(sympy.together(rate))
    num, den = sympy.fraction(r)
    num, den = sympy.expand(num), sympy.expand(den)
    if not (num.is_polynomial(S) and den.is_polynomial(S)):
        return None
    if sympy.degree(num, S) != 1 or sympy.degree(den, S) != 1:
        return None
    a, a0 = num.coeff(S, 1), num.coeff(S, 0)
    b, d = den.coeff(S, 1), den.coeff(S, 0)
    if a0 != 0 or b == 0 or d == 0:
        return None
    return sympy.simplify(a / b), sympy.simplify(d / b)


def _mm_rewrite(
    rid: str,
    substrate: str,
    rate: Expr,
    net: ReactionNetwork,
    taken: set[str],
    env: Mapping[str, float],
) -> tuple[Expr, MichaelisMenten, list[Parameter], list[AssignmentRule]] | None:
    try:
        form = michaelis_menten_form(to_sympy(rate), substrate)
    except UnsupportedFeatureError:
        return None
    if form is None:
        return None
    V, K = form
    names = {s.name for s in (V.free_symbols | K.free_symbols)}
    if names & set(net.species_map) or "time" in names:
        return None
    try:
        V_e, K_e = from_sympy(V), from_sympy(K)
    except UnsupportedFeatureError:
        return None
    from ..model.expr import evaluate

    V_val, K_val = evaluate(V_e, env), evaluate(K_e, env)
    vid, kid = _fresh(f"Vmax_{rid}", taken), _fresh(f"Km_{rid}", taken)
    params = [
        Parameter(vid, None, constant=False, name=f"maximal rate of {rid} (QSSA)"),
        Parameter(kid, None, constant=False, name=f"half-saturation level of {rid} (QSSA)"),
    ]
    rules = [AssignmentRule(vid, V_e), AssignmentRule(kid, K_e)]
    S = Sym(substrate)
    law = Call("div", (Call("mul", (Sym(vid), S)), Call("add", (Sym(kid), S))))
    return law, MichaelisMenten(rid, substrate, V, K, V_val, K_val), params, rules


def _fresh(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


# -- error report -----------------------------------------------------------------------------
def _error_report(
    traj: Trajectory,
    fs: FastSubsystem,
    ms: ManifoldSamples,
    ts: TimescaleReport,
    stab: StabilityReport,
    reduced: ReactionNetwork | None,
    rtol: float,
    atol: float,
) -> ReductionErrorReport:
    slow_names = fs.slow
    if reduced is not None:
        red = sample_trajectory(reduced, traj.times, rtol=rtol, atol=atol)
        X = np.column_stack([red.states[:, red.index(n)] for n in slow_names])
        by = "the reduced network (compiled BDF)"
    else:
        X = _integrate_numeric(fs, ms, rtol, atol)
        by = "the slow flow with h by Newton's method (scipy LSODA)"
    t_layer = ts.layer_end
    sel = traj.times >= t_layer
    full_X = traj.states[:, fs.slow_idx]
    max_abs, max_rel = {}, {}
    for k, name in enumerate(slow_names):
        d = np.abs(X[sel, k] - full_X[sel, k])
        mag = float(np.max(np.abs(full_X[sel, k]))) if sel.any() else 0.0
        max_abs[name] = float(np.max(d)) if sel.any() else 0.0
        max_rel[name] = (
            max_abs[name] / mag if mag > 0 else (0.0 if max_abs[name] == 0 else math.inf)
        )
    resid = {}
    full_Y = traj.states[:, fs.fast_idx]
    for k, name in enumerate(fs.fast):
        mag = float(np.max(np.abs(full_Y[sel, k]))) if sel.any() else 0.0
        d = float(np.max(np.abs(full_Y[sel, k] - ms.y[sel, k]))) if sel.any() else 0.0
        resid[name] = d / mag if mag > 0 else d
    return ReductionErrorReport(
        layer_end=t_layer,
        layer_time_constants=ts.layer_time_constants,
        t_end=float(traj.times[-1]),
        n_compared=int(sel.sum()),
        max_abs=max_abs,
        max_rel=max_rel,
        fast_residual=resid,
        eps_max=ts.eps_after(t_layer),
        eps_max_all=ts.eps_max,
        split_error_max=stab.split_error_max,
        reduced_by=by,
    )


def _integrate_numeric(
    fs: FastSubsystem, ms: ManifoldSamples, rtol: float, atol: float
) -> np.ndarray:
    """The slow flow ``dx/dt = F_x(t, x, h(x))`` with ``h`` by Newton (warm-started)."""
    from scipy.integrate import solve_ivp

    traj = fs.traj
    template = ms.z[0].copy()
    last = {"y": ms.y[0].copy()}

    def fun(t: float, x: np.ndarray) -> np.ndarray:
        z = template.copy()
        z[fs.slow_idx] = x
        y, ok = fs.newton(t, z, last["y"])
        if not ok:
            raise SolverError(
                f"the critical manifold has no point near the reduced state at t = {t:g}",
                time=float(t),
            )
        last["y"] = y
        z[fs.fast_idx] = y
        return traj.rhs(t, z)[fs.slow_idx]

    x0 = traj.states[0, fs.slow_idx]
    scale = np.maximum(np.abs(traj.states[:, fs.slow_idx]).max(axis=0), 1e-300)
    sol = solve_ivp(
        fun,
        (float(traj.times[0]), float(traj.times[-1])),
        x0,
        method="LSODA",
        t_eval=traj.times,
        rtol=max(rtol, 1e-12),
        atol=np.maximum(atol, 1e-12 * scale),
    )
    if not sol.success:
        raise SolverError(f"the reduced slow flow failed: {sol.message}")
    return np.asarray(sol.y.T)


# ---------------------------------------------------------------------------------------------
# The built-in example
# ---------------------------------------------------------------------------------------------
def receptor_uptake(values: Mapping[str, float] | None = None) -> ReactionNetwork:
    """The built-in receptor binding and internalization model (``data/receptor_uptake.ant``).

    ``L + R <-> C`` (k_on, k_off), ``C -> R + Li`` (k_int), ``R + C = R_T``.  Its reduction with
    fast ``C`` and ``R`` gives the uptake law ``u(L) = V_max*L/(K_m + L)`` with
    ``V_max = k_int*R_T`` and ``K_m = (k_off + k_int)/k_on``.
    """
    from importlib import resources

    from ..model.antimony import from_antimony

    text = resources.files("scalebridge").joinpath("data", RECEPTOR_MODEL).read_text("utf-8")
    net = from_antimony(text, source=RECEPTOR_MODEL)
    return net.with_values(values) if values else net
