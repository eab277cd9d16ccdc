"""Hierarchical (bottom-up) coupling: molecular kinetics -> cell uptake law -> tissue gradient.

When the scales are separated, each scale's fast model is replaced by the effective law it
implies, and that law parameterises the next scale up.  :class:`HierarchicalPipeline` makes the
chain an object whose stages can be inspected (attributes and ``summary()``), saved
(``to_dict()``/JSON, NetCDF for fields, SBML for the reduced network) and replaced
(:meth:`HierarchicalPipeline.replace`, e.g. with your own ``u(c)`` or ``D_eff``):

1. **molecular** (:class:`MolecularStage`): a reaction network for *one cell* (default: the
   built-in receptor binding and internalization model,
   :func:`scalebridge.reduce.receptor_uptake`: ``L + R <-> C``, ``C -> R + Li``), with the
   ligand ``L`` held at the local tissue concentration ``c`` (a boundary species: the tissue
   supplies it) and the receptor states as fast variables;
2. **uptake** (:class:`UptakeLaw`): the QSSA reduction of that network
   (:func:`scalebridge.reduce.reduce`: critical manifold ``y = h(c)`` in closed form, checked
   for stability) gives the ligand consumption per cell ``u(c) = -dL/dt`` on the manifold; for
   the receptor model ``u(c) = V_max c/(K_m + c)``, ``V_max = k_int R_T``,
   ``K_m = (k_off + k_int)/k_on`` (:func:`~scalebridge.reduce.qssa.michaelis_menten_form`
   recognises the form and gives ``V_max``, ``K_m`` in the molecular constants);
3. **diffusivity** (:class:`DiffusivityStage`): ``D_eff`` from the periodic cell problem on a
   unit-cell microstructure (:func:`scalebridge.space.homogenize.homogenize`), e.g. cells of
   low diffusivity in extracellular space; the tissue PDE takes ``e_x . D_eff . e_x`` on a 1-D
   grid and requires an isotropic tensor on 2-D/3-D grids;
4. **sink** (:class:`SinkStage`): ``q(c) = rho_cells u(c) + k_deg c`` per unit volume
   (``rho_cells`` cells per unit volume, optional linear decay ``k_deg``);
5. **tissue** (:class:`TissueStage`): ``dc/dt = div(D_eff grad c) - q(c)`` with the given
   boundary conditions (:class:`~scalebridge.space.problem.ReactionDiffusion`);
6. **gradient** (:class:`GradientStage`): its steady state (Newton,
   :func:`~scalebridge.space.steady.steady_state`), the morphogen gradient.

Units: the network describes one cell -- its reaction rates (amount per time) are per cell, its
ligand symbol is the tissue concentration ``c`` (so ``k_on`` is per concentration per time) and
``rho_cells`` converts per-cell amounts into the concentration unit of ``c``.  The cell problem
treats the cells as a region of lower diffusivity with the same capacity as the extracellular
space (partition coefficient 1), so ``c`` is the mean concentration over the tissue.

Timescales and separation
-------------------------
:attr:`HierarchicalPipeline.timescales` (:class:`Timescales`) computes

* ``t_molecular``: the slowest relaxation of the fast receptor states at fixed ligand,
  ``1/min|Re lambda|`` over the non-zero eigenvalues of the fast block of the per-cell Jacobian
  on the manifold, maximised over ``0 <= c <= c_ref`` (receptor model:
  ``1/(k_on c + k_off + k_int)``, largest at ``c = 0``);
* ``t_capture``: the capture of free ligand by the free receptors,
  ``1/(rho_cells |d(dL/dt)/dL|)`` at ``c -> 0`` (receptor model: ``1/(rho_cells k_on R_T)``);
  ``t_molecular/t_capture = rho_cells R_T k_on/(k_on c + k_off + k_int)`` is the receptor
  capacity ``rho_cells R_T/K_m`` at ``c = 0``, the Segel-Slemrod parameter of the reduction: when
  it is not small, ligand stored in complexes slows the free ligand's dynamics and the QSSA on the
  free ligand fails however fast the receptors relax;
* ``t_cell``: the uptake turnover ``1/(rho_cells max u'(c))`` (``K_m/(rho_cells V_max)``);
* ``t_diffusion = L^2/D_eff`` (``L`` the largest side of the tissue box) and
  ``t_decay = 1/k_deg``; ``t_tissue`` is the shorter of the two.

The scales are *separated* when ``min(t_capture, t_cell) >= threshold * t_molecular`` and
``t_tissue >= threshold * t_cell`` (``threshold`` = :data:`SEPARATION` = 10 by default).  When
they are not, a :class:`TimescaleWarning` says which ratio fails, with the numbers: the
hierarchical model is then not justified and the receptors must be resolved
(:meth:`HierarchicalPipeline.resolved_model`, the concurrent description).

Exactness of the steady state
-----------------------------
At a steady state of the resolved model (ligand field plus receptor states in every grid cell)
the receptor states satisfy ``f(c, y) = 0``, i.e. they lie on the critical manifold, and the
ligand's sink is exactly ``rho_cells u(c)``: the steady gradient of the hierarchical model *is*
the resolved model's, for any separation.  The timescale separation controls the error of the
gradient while it forms (transients), which is ``O(t_molecular/min(t_capture, t_cell))``
(``tests/validation/test_hierarchical_vs_full.py`` measures it).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_path, atomic_write_text, json_safe
from ..errors import ModelError, OptionError, UnsupportedFeatureError
from ..model.expr import (
    Call,
    Expr,
    FunCall,
    Num,
    Sym,
    diff,
    evaluate,
    expand_functions,
    fold,
    substitute,
    symbols,
    to_infix,
    walk,
)
from ..model.network import ReactionNetwork
from ..space.boundary import BoundaryConditions, Dirichlet, Robin
from ..space.grid import Grid
from ..space.homogenize import HomogenizationResult, homogenize
from ..space.problem import ReactionDiffusion
from ..space.scenario import microstructure_from_spec, tissue_diffusivity

if TYPE_CHECKING:
    from ..reduce.qssa import Reduction
    from ..results import Result
    from ..space.steady import SteadyField

__all__ = [
    "SEPARATION",
    "DiffusivityStage",
    "GradientStage",
    "HierarchicalPipeline",
    "MolecularStage",
    "SinkStage",
    "TimescaleWarning",
    "Timescales",
    "TissueStage",
    "UptakeLaw",
]

#: Default ratio between consecutive timescales for the scales to count as separated.
SEPARATION = 10.0
# c values at which t_molecular and max u'(c) are sampled on [0, c_ref]
_N_SAMPLES = 33
# eigenvalues below this fraction of the largest are conservation laws (exact zeros)
_ZERO_EIG = 1e-9


class TimescaleWarning(UserWarning):
    """The scales of a hierarchical pipeline are not separated (the message has the numbers)."""


def _g(x: float | None) -> str:
    if x is None:
        return "unknown"
    return "inf" if math.isinf(x) else f"{x:.4g}"


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# =============================================================================================
# The uptake law


@dataclass(frozen=True)
class UptakeLaw:
    """The uptake of ligand by one cell, ``u(c)`` (amount per cell per time), as an expression in
    the single symbol ``variable`` with numeric coefficients.

    ``origin`` is ``"qssa"`` when derived from a molecular network (then ``symbolic`` is the law
    in the molecular constants and ``relaxation_time`` the receptors' slowest relaxation), or
    ``"given"``.  ``V_max``/``K_m`` are set when the law has the Michaelis-Menten form.
    """

    expression: Expr
    variable: str = "c"
    origin: str = "given"
    symbolic: str = ""
    V_max: float | None = None
    K_m: float | None = None
    V_max_expression: str = ""
    K_m_expression: str = ""
    relaxation_time: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.expression, Expr):
            raise ModelError("an uptake law needs an expression tree (or use UptakeLaw.from_text)")
        if not (isinstance(self.variable, str) and self.variable.isidentifier()):
            raise ModelError(f"uptake law variable {self.variable!r} is not a valid name")
        for node in walk(self.expression):
            if isinstance(node, FunCall):
                raise ModelError(f"unknown function '{node.name}' in the uptake law")
        extra = sorted(symbols(self.expression) - {self.variable})
        if extra:
            raise ModelError(
                f"the uptake law may depend only on '{self.variable}'; give values for "
                f"{', '.join(repr(s) for s in extra)}",
                element=extra[0],
            )
        object.__setattr__(self, "expression", fold(self.expression))
        if self.V_max is None and self.K_m is None:
            mm = _mm_numbers(self.expression, self.variable)
            if mm is not None:
                object.__setattr__(self, "V_max", mm[0])
                object.__setattr__(self, "K_m", mm[1])

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_text(
        cls,
        text: str,
        variable: str = "c",
        parameters: Mapping[str, float] | None = None,
        *,
        relaxation_time: float | None = None,
    ) -> UptakeLaw:
        """A law from infix text in ``variable`` and ``parameters`` (numbers substituted), e.g.
        ``UptakeLaw.from_text("V*c/(K + c)", parameters={"V": 2, "K": 300})``."""
        from ..model.parse import parse_expr

        params = dict(parameters or {})
        e = parse_expr(text, element="uptake", shadow=(variable, *params))
        e = substitute(e, {k: Num(float(v)) for k, v in params.items()})
        return cls(e, variable, "given", symbolic=text, relaxation_time=relaxation_time)

    @classmethod
    def michaelis_menten(cls, V_max: float, K_m: float, variable: str = "c") -> UptakeLaw:
        """``u(c) = V_max c/(K_m + c)``."""
        if not (V_max >= 0 and K_m > 0):
            raise ModelError(
                f"Michaelis-Menten uptake needs V_max >= 0 and K_m > 0, got {V_max!r}, {K_m!r}"
            )
        c = Sym(variable)
        e = Call("div", (Call("mul", (Num(V_max), c)), Call("add", (Num(K_m), c))))
        return cls(
            e,
            variable,
            "given",
            symbolic=f"V_max*{variable}/(K_m + {variable})",
            V_max=float(V_max),
            K_m=float(K_m),
        )

    @classmethod
    def linear(cls, k: float, variable: str = "c") -> UptakeLaw:
        """``u(c) = k c`` (first-order uptake)."""
        if not k >= 0:
            raise ModelError(f"linear uptake needs k >= 0, got {k!r}")
        return cls(
            Call("mul", (Num(k), Sym(variable))), variable, "given", symbolic=f"k*{variable}"
        )

    def renamed(self, variable: str) -> UptakeLaw:
        """The same law in another symbol."""
        if variable == self.variable:
            return self
        e = substitute(self.expression, {self.variable: Sym(variable)})
        return UptakeLaw(
            e,
            variable,
            self.origin,
            self.symbolic,
            self.V_max,
            self.K_m,
            self.V_max_expression,
            self.K_m_expression,
            self.relaxation_time,
        )

    # ------------------------------------------------------------------ evaluation
    def __call__(self, c: Any) -> np.ndarray:
        """``u`` at the concentrations ``c`` (array or number)."""
        return _evaluate_1d(self.expression, self.variable, c)

    def slope(self, c: Any) -> np.ndarray:
        """``du/dc`` at ``c``."""
        return _evaluate_1d(fold(diff(self.expression, self.variable)), self.variable, c)

    @property
    def text(self) -> str:
        return to_infix(self.expression)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "expression": self.text,
            "origin": self.origin,
            "symbolic": self.symbolic,
            "V_max": self.V_max,
            "K_m": self.K_m,
            "V_max_expression": self.V_max_expression,
            "K_m_expression": self.K_m_expression,
            "relaxation_time": self.relaxation_time,
        }

    def summary(self) -> str:
        v = self.variable
        lines = [f"uptake law ({self.origin}): u({v}) = {self.text}  (per cell per time)"]
        if self.symbolic:
            lines.append(f"  in the molecular constants: u({v}) = {self.symbolic}")
        if self.V_max is not None and self.K_m is not None:
            vx = f" = {self.V_max_expression}" if self.V_max_expression else ""
            kx = f" = {self.K_m_expression}" if self.K_m_expression else ""
            lines.append(
                f"  Michaelis-Menten: V_max{vx} = {self.V_max:.6g}, K_m{kx} = {self.K_m:.6g}"
            )
        return "\n".join(lines)

    __str__ = summary


def _evaluate_1d(e: Expr, var: str, c: Any) -> np.ndarray:
    arr = np.asarray(c, dtype=np.float64)
    flat = arr.reshape(-1)
    out = np.array([evaluate(e, {var: float(x)}) for x in flat])
    return out.reshape(arr.shape)


def _mm_numbers(e: Expr, var: str) -> tuple[float, float] | None:
    """``(V_max, K_m)`` when the numeric law ``e`` is ``V_max var/(K_m + var)``."""
    parts = _mm_symbolic(e, var)
    if parts is None:
        return None
    try:
        V, K = float(parts[0]), float(parts[1])
    except (TypeError, ValueError):
        return None
    return (V, K) if K > 0 else None


def _mm_symbolic(e: Expr, var: str) -> tuple[Any, Any] | None:
    from ..model.symbolic import to_sympy
    from ..reduce.qssa import michaelis_menten_form

    try:
        return michaelis_menten_form(to_sympy(e), var)
    except (UnsupportedFeatureError, ModelError, TypeError, ValueError):
        return None


# =============================================================================================
# Stage 1: the molecular network


def _rule_substitutions(net: ReactionNetwork) -> dict[str, Expr]:
    """Assignment rules on non-species symbols, expanded into each other (acyclic by
    validation)."""
    table = net.functions_table
    rules = {
        r.variable: expand_functions(r.math, table, element=r.variable)
        for r in net.assignment_rules
        if r.variable not in net.species_map
    }
    for _ in range(len(rules) + 1):
        changed = False
        for k, e in rules.items():
            if symbols(e) & set(rules):
                rules[k] = substitute(e, rules)
                changed = True
        if not changed:
            break
    return rules


def _numeric_env(net: ReactionNetwork) -> dict[str, float]:
    """Values of the compartments and parameters at the initial time (declared values, then
    initial assignments), as the compiled model computes them."""
    from ..wellmixed.compiled import compiled

    cm = compiled(net)
    _, v = cm.initial({}, 0.0, default_size=1.0)
    env: dict[str, float] = {}
    for name in [*net.compartment_map, *net.parameter_map]:
        slot = cm.slots.get(name)
        if slot is not None:
            env[name] = float(v[slot])
    return env


def _species_rates(net: ReactionNetwork, species: Sequence[str]) -> dict[str, Expr]:
    """``sum_j N_Sj v_j`` (amount per time) for each species, in the model's symbols (species
    as their symbols, rules substituted, functions and local parameters inlined)."""
    table = net.functions_table
    rules = _rule_substitutions(net)
    out: dict[str, list[Expr]] = {s: [] for s in species}
    for r in net.reactions:
        if r.rate is None:
            raise ModelError("reaction without a kinetic law", element=r.id, source=net.source)
        v = expand_functions(r.rate, table, element=r.id)
        local: dict[str, Expr] = {}
        for p in r.local_parameters:
            if p.value is None:
                raise ModelError(
                    f"local parameter '{p.id}' of reaction '{r.id}' has no value",
                    element=p.id,
                    source=net.source,
                )
            local[p.id] = Num(float(p.value))
        v = substitute(substitute(v, local), rules)
        net_st: dict[str, float] = {}
        for sign, refs in ((-1.0, r.reactants), (1.0, r.products)):
            for ref in refs:
                if ref.stoichiometry is None or not ref.constant:
                    raise UnsupportedFeatureError(
                        "a variable stoichiometry in a hierarchical pipeline",
                        element=r.id,
                        source=net.source,
                    )
                net_st[ref.species] = net_st.get(ref.species, 0.0) + sign * ref.stoichiometry
        for s in species:
            n = net_st.get(s, 0.0)
            if n != 0.0:
                out[s].append(Call("mul", (Num(n), v)))
    return {
        s: (Call("add", tuple(t)) if len(t) > 1 else (t[0] if t else Num(0.0)))
        for s, t in out.items()
    }


def _compartment_size(net: ReactionNetwork, species: str, env: Mapping[str, float]) -> float:
    s = net.species_map[species]
    if s.has_only_substance_units:
        return 1.0
    return float(env.get(s.compartment, 1.0))


@dataclass(frozen=True)
class MolecularStage:
    """The per-cell network and its QSSA reduction with the ligand held at ``c``.

    ``network`` is the network with the given values; ``clamped`` the same with the ligand a
    boundary species (the tissue supplies it); ``reduction`` the
    :class:`~scalebridge.reduce.qssa.Reduction` of ``clamped`` with ``fast`` fast; ``manifold``
    the fast species' quasi-steady states ``h(c)`` with numbers substituted;
    ``relaxation_times[i]`` the slowest relaxation of the fast states at
    ``concentrations[i]``; ``capture_rate`` ``-d(dL/dt)/dL`` per cell at ``c -> 0`` (the first-
    order rate constant of ligand capture by one cell's free receptors, per unit concentration
    of cells).
    """

    network: ReactionNetwork
    clamped: ReactionNetwork
    ligand: str
    fast: tuple[str, ...]
    reduction: Reduction
    manifold: dict[str, Expr]
    concentrations: np.ndarray
    relaxation_times: np.ndarray
    capture_rate: float
    law: UptakeLaw

    @property
    def t_molecular(self) -> float:
        """The slowest fast relaxation over the sampled concentrations."""
        return float(np.max(self.relaxation_times))

    def receptor_states(self, c: Any) -> dict[str, np.ndarray]:
        """The fast species' quasi-steady states ``h(c)``."""
        return {k: _evaluate_1d(e, self.ligand, c) for k, e in self.manifold.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network.id,
            "ligand": self.ligand,
            "fast": list(self.fast),
            "manifold": {k: to_infix(e) for k, e in self.manifold.items()},
            "relaxation": {
                "c": self.concentrations.tolist(),
                "t_molecular": self.relaxation_times.tolist(),
            },
            "t_molecular": self.t_molecular,
            "capture_rate_per_cell": self.capture_rate,
            "uptake": self.law.to_dict(),
            "reduction": self.reduction.to_dict(),
        }

    def summary(self) -> str:
        lines = [
            f"molecular stage: network '{self.network.id}', ligand {self.ligand} held at the "
            f"tissue concentration, fast {', '.join(self.fast)}",
            "  quasi-steady states: "
            + "; ".join(f"{k} = {to_infix(e)}" for k, e in self.manifold.items()),
            f"  slowest receptor relaxation t_molecular = {self.t_molecular:.4g} (over "
            f"{self.ligand} = {self.concentrations[0]:.4g} ... {self.concentrations[-1]:.4g})",
            f"  ligand capture rate per cell at {self.ligand} -> 0: {self.capture_rate:.4g}",
        ]
        return "\n".join(lines)

    __str__ = summary

    def save(self, directory: Path) -> list[Path]:
        """Write ``molecular_network.xml`` (the per-cell network) and ``reduced_network.xml``
        (the QSSA-reduced network, collapsed form) as SBML."""
        from ..model.sbml import write_sbml

        out = [directory / "molecular_network.xml", directory / "reduced_network.xml"]
        write_sbml(self.network, out[0])
        self.reduction.write_sbml(out[1])
        return out


def molecular_stage(
    network: ReactionNetwork,
    *,
    ligand: str,
    fast: Sequence[str],
    c_ref: float,
    source: str | None = None,
) -> MolecularStage:
    """Reduce the per-cell ``network`` with the ligand clamped (see the module docstring)."""
    import dataclasses

    from ..reduce.qssa import reduce

    if ligand not in network.species_map:
        raise ModelError(
            f"the ligand '{ligand}' is not a species of network '{network.id}'",
            element=ligand,
            source=source,
        )
    fast = tuple(fast)
    if not fast:
        raise ModelError("give the fast (receptor) species of the molecular network", source=source)
    for s in fast:
        if s not in network.species_map:
            raise ModelError(
                f"fast species '{s}' is not a species of network '{network.id}'",
                element=s,
                source=source,
            )
        if s == ligand:
            raise ModelError(
                f"the ligand '{ligand}' cannot be fast: the tissue sets it",
                element=s,
                source=source,
            )
    clamp_at = c_ref if c_ref > 0 else 1.0
    species = tuple(
        dataclasses.replace(s, boundary_condition=True) if s.id == ligand else s
        for s in network.species
    )
    clamped = network.replace(species=species).with_values({ligand: clamp_at})
    env = _numeric_env(network)
    # the slowest fast relaxation sets how long the reduction's check run must be
    rates = _species_rates(network, [ligand, *fast])
    red0 = _relaxation_from_jacobian(
        rates, env, fast, ligand, None, [clamp_at], network, initial=True
    )
    t_end = 200.0 * float(red0[0])
    red = reduce(clamped, list(fast), t_end=t_end)
    man = red.manifold
    if man.expressions is None:
        raise UnsupportedFeatureError(
            "a numerical critical manifold in a hierarchical pipeline",
            element=", ".join(fast),
            source=source,
            detail="the uptake law needs h(c) in closed form: " + man.why_numeric,
        )
    env_all = {**env, **{k: float(v) for k, v in man.totals.items()}}
    num_env = {k: Num(v) for k, v in env_all.items()}
    h_sym = {k: man.expressions[k] for k in fast}
    h_num = {k: fold(substitute(e, num_env)) for k, e in h_sym.items()}
    for k, e in h_num.items():
        extra = symbols(e) - {ligand}
        if extra:
            raise ModelError(
                f"the quasi-steady state of '{k}' depends on {sorted(extra)} without values",
                element=k,
                source=source,
            )
    # u(c) = -(dL/dt) per cell on the manifold, symbolic and numeric
    u_sym = fold(substitute(Call("neg", (rates[ligand],)), h_sym))
    u_num = fold(substitute(u_sym, num_env))
    V_txt = K_txt = ""
    V = K = None
    mm = _mm_symbolic(u_sym, ligand)
    if mm is not None:
        from ..model.symbolic import from_sympy

        V_txt, K_txt = str(mm[0]), str(mm[1])
        try:
            V = evaluate(fold(from_sympy(mm[0])), env_all)
            K = evaluate(fold(from_sympy(mm[1])), env_all)
        except (ModelError, UnsupportedFeatureError):
            V = K = None
            V_txt = K_txt = ""
    conc = np.linspace(0.0, max(c_ref, 0.0), _N_SAMPLES) if c_ref > 0 else np.zeros(1)
    t_m = _relaxation_from_jacobian(rates, env, fast, ligand, h_num, conc, network)
    # capture: -(d/dL) of the ligand's rate at fixed receptor states, at c -> 0
    y0 = {k: float(_evaluate_1d(e, ligand, 0.0)) for k, e in h_num.items()}
    dL = fold(substitute(diff(rates[ligand], ligand), num_env))
    capture = -evaluate(dL, {ligand: 0.0, **y0})
    if V is not None and K is not None:
        # the same function, written in its Michaelis-Menten form
        u_num = Call(
            "div", (Call("mul", (Num(V), Sym(ligand))), Call("add", (Num(K), Sym(ligand))))
        )
        u_text = f"V_max*{ligand}/(K_m + {ligand})"
    else:
        u_num, u_text = _simplified(u_num), to_infix(_simplified(u_sym))
    law = UptakeLaw(
        u_num,
        ligand,
        "qssa",
        symbolic=u_text,
        V_max=V,
        K_m=K,
        V_max_expression=V_txt,
        K_m_expression=K_txt,
        relaxation_time=float(np.max(t_m)),
    )
    return MolecularStage(
        network, clamped, ligand, fast, red, h_num, conc, t_m, float(capture), law
    )


def _simplified(e: Expr) -> Expr:
    """``e`` with its rational parts cancelled by sympy (unchanged when sympy cannot)."""
    import sympy

    from ..model.symbolic import from_sympy, to_sympy

    try:
        return fold(from_sympy(sympy.cancel(to_sympy(e))))
    except (UnsupportedFeatureError, ModelError, TypeError, ValueError):
        return e


def _relaxation_from_jacobian(
    rates: Mapping[str, Expr],
    env: Mapping[str, float],
    fast: Sequence[str],
    ligand: str,
    manifold: Mapping[str, Expr] | None,
    conc: Sequence[float] | np.ndarray,
    net: ReactionNetwork,
    *,
    initial: bool = False,
) -> np.ndarray:
    """``1/min|Re lambda|`` over the non-zero eigenvalues of the fast block of the Jacobian
    (in the species' own symbols) at each ligand concentration, on the manifold (or, with
    ``initial``, at the network's initial state)."""
    num_env = {k: Num(v) for k, v in env.items()}
    f = {
        s: fold(substitute(Call("div", (rates[s], Num(_compartment_size(net, s, env)))), num_env))
        for s in fast
    }
    J_e = [[fold(diff(f[a], b)) for b in fast] for a in fast]
    state: dict[str, float] = {}
    if initial:
        from ..space.reactions import network_initial

        init = network_initial(net, {})
        state = {s: float(init.get(s, 0.0)) for s in fast}
    out = []
    for c in conc:
        if manifold is not None:
            state = {k: float(_evaluate_1d(e, ligand, c)) for k, e in manifold.items()}
        point = {ligand: float(c), **state}
        J = np.array([[evaluate(e, point) for e in row] for row in J_e])
        lam = np.linalg.eigvals(J)
        scale = float(np.max(np.abs(lam))) if lam.size else 0.0
        nonzero = lam[np.abs(lam) > _ZERO_EIG * scale] if scale > 0 else lam[:0]
        if nonzero.size == 0:
            raise ModelError(
                f"the fast species {', '.join(fast)} do not relax at "
                f"{ligand} = {c:g}: no non-zero eigenvalue"
            )
        if np.any(nonzero.real >= 0):
            raise ModelError(
                f"the fast species {', '.join(fast)} are not attracted to their "
                f"quasi-steady state at {ligand} = {c:g} (eigenvalues "
                f"{', '.join(f'{z:.3g}' for z in lam)})"
            )
        out.append(1.0 / float(np.min(np.abs(nonzero.real))))
    return np.asarray(out)


# =============================================================================================
# Stage 2/3: effective diffusivity


@dataclass(frozen=True)
class DiffusivityStage:
    """``D_eff``: the full ``tensor`` and the ``value`` the tissue PDE uses (``e_x . D_eff .
    e_x`` on a 1-D grid, the isotropic value otherwise); ``origin`` ``"homogenized"`` (with the
    ``homogenization`` result and the unit-cell ``microstructure``) or ``"given"``."""

    tensor: np.ndarray
    value: float
    origin: str
    homogenization: HomogenizationResult | None = None
    microstructure: np.ndarray | None = field(default=None, repr=False)
    spec: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "tensor": np.asarray(self.tensor).tolist(),
            "origin": self.origin,
            "microstructure": self.spec,
            "homogenization": (
                None if self.homogenization is None else self.homogenization.to_dict()
            ),
        }

    def summary(self) -> str:
        if self.homogenization is None:
            return f"diffusivity (given): D_eff = {self.value:.6g}"
        hom = "\n".join("  " + line for line in self.homogenization.summary().splitlines())
        return f"diffusivity (homogenized): D_eff = {self.value:.6g} in the tissue PDE\n{hom}"

    __str__ = summary

    def save(self, directory: Path) -> list[Path]:
        """``microstructure.nc``: the unit cell's diffusivities (when homogenized)."""
        if self.microstructure is None:
            return []
        import xarray as xr

        arr = np.asarray(self.microstructure, dtype=np.float64)
        dims = tuple(f"y{i + 1}" for i in range(arr.ndim))
        coords = {d: (np.arange(n) + 0.5) / n for d, n in zip(dims, arr.shape, strict=True)}
        da = xr.DataArray(arr, dims=dims, coords=coords, name="diffusivity")
        ds = da.to_dataset()
        ds.attrs["D_eff_tensor"] = np.asarray(self.tensor).reshape(-1).tolist()
        ds.attrs["D_eff"] = self.value
        path = directory / "microstructure.nc"
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")
        return [path]


def diffusivity_stage(
    *,
    ndim: int,
    microstructure: Any = None,
    diffusivity: Any = None,
    source: str | None = None,
) -> DiffusivityStage:
    """A :class:`DiffusivityStage`: from a ``microstructure`` (array of local diffusivities,
    spec mapping as in YAML scenarios, or
    :class:`~scalebridge.space.homogenize.HomogenizationResult`) by the cell problem, or from a
    given ``diffusivity`` (``D_eff`` as a number, a ``d x d`` tensor or a
    :class:`DiffusivityStage`)."""
    spec = None
    micro = None
    hom: HomogenizationResult | None = None
    if diffusivity is not None:
        if isinstance(diffusivity, DiffusivityStage):
            return diffusivity
        arr = np.asarray(diffusivity, dtype=np.float64)
        if arr.ndim == 0:
            tensor = np.eye(ndim) * float(arr)
        elif arr.ndim == 2 and arr.shape[0] == arr.shape[1] and 1 <= arr.shape[0] <= 3:
            if not np.allclose(arr, arr.T, rtol=1e-12, atol=0.0):
                raise ModelError("a given diffusion tensor must be symmetric", source=source)
            tensor = arr
        else:
            raise ModelError(
                f"diffusivity must be a number or a square tensor of size 1-3, got an array of "
                f"shape {arr.shape} (give a microstructure with microstructure=)",
                source=source,
            )
        origin = "given"
    else:
        if isinstance(microstructure, HomogenizationResult):
            hom = microstructure
        elif isinstance(microstructure, Mapping):
            micro = microstructure_from_spec(microstructure, where="microstructure", source=source)
            spec = dict(microstructure)
            hom = homogenize(micro, source=source)
        else:
            micro = np.asarray(microstructure, dtype=np.float64)
            hom = homogenize(micro, source=source)
        tensor = hom.tensor
        origin = "homogenized"
    tensor = np.asarray(tensor, dtype=np.float64)
    if not np.all(np.isfinite(tensor)) or np.any(np.linalg.eigvalsh(tensor) <= 0):
        raise ModelError(
            "the effective diffusion tensor must be finite and positive definite", source=source
        )
    return DiffusivityStage(
        tensor, tissue_diffusivity(tensor, ndim, source=source), origin, hom, micro, spec
    )


# =============================================================================================
# Stage 4-6: sink, tissue, gradient


@dataclass(frozen=True)
class SinkStage:
    """The tissue sink ``q(c) = rho_cells u(c) + k_deg c`` (amount per volume per time)."""

    law: UptakeLaw
    cell_density: float
    decay: float
    field: str

    @property
    def expression(self) -> Expr:
        c = Sym(self.field)
        q = Call("mul", (Num(self.cell_density), self.law.renamed(self.field).expression))
        if self.decay:
            q = Call("add", (q, Call("mul", (Num(self.decay), c))))
        return fold(q)

    def __call__(self, c: Any) -> np.ndarray:
        return _evaluate_1d(self.expression, self.field, c)

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "cell_density": self.cell_density,
            "decay": self.decay,
            "q": to_infix(self.expression),
        }

    def summary(self) -> str:
        f = self.field
        d = f" + k_deg*{f}, k_deg = {self.decay:.6g}" if self.decay else ""
        return (
            f"sink: q({f}) = rho_cells*u({f}){d}, rho_cells = {self.cell_density:.6g}\n"
            f"  q({f}) = {to_infix(self.expression)}"
        )

    __str__ = summary


@dataclass(frozen=True)
class TissueStage:
    """The tissue PDE ``dc/dt = div(D_eff grad c) - q(c)`` as a
    :class:`~scalebridge.space.problem.ReactionDiffusion` ``model``."""

    model: ReactionDiffusion
    field: str

    def to_dict(self) -> dict[str, Any]:
        m = self.model
        g = m.grid
        return {
            "field": self.field,
            "grid": {
                "shape": list(g.shape),
                "spacing": list(g.spacing),
                "origin": list(g.origin),
                "lengths": list(g.lengths),
            },
            "diffusivity": float(np.asarray(m.diffusivities[0])),
            "reaction": to_infix(m.source_terms[self.field]),
            "boundary": {s: c.kind for s, c in m.conditions(self.field).items()},
        }

    def summary(self) -> str:
        m = self.model
        f = self.field
        bcs = ", ".join(f"{s}: {c.kind}" for s, c in m.conditions(f).items())
        return (
            f"tissue: d{f}/dt = D_eff*laplace({f}) + ({to_infix(m.source_terms[f])}) on "
            f"{m.grid!r}\n  D_eff = {float(np.asarray(m.diffusivities[0])):.6g}; boundary "
            f"{bcs}"
        )

    __str__ = summary


@dataclass(frozen=True)
class GradientStage:
    """The steady gradient: ``steady`` (:class:`~scalebridge.space.steady.SteadyField`),
    ``values`` (the field), ``sink`` (``q`` at every cell), ``total_uptake`` (``int q dV``),
    ``boundary_influx`` (the net amount per time entering through the box's sides, which equals
    ``total_uptake`` at a steady state) and, on a 1-D grid, ``decay_length`` (distance from the
    first cell over which ``c`` falls by the factor e; None if it never does)."""

    steady: SteadyField
    field: str
    grid: Grid
    sink: np.ndarray
    total_uptake: float
    boundary_influx: float
    decay_length: float | None

    @property
    def values(self) -> np.ndarray:
        return self.steady.values(self.field)

    def to_dict(self) -> dict[str, Any]:
        v = self.values
        return {
            "field": self.field,
            "min": float(np.nanmin(v)),
            "max": float(np.nanmax(v)),
            "total_uptake": self.total_uptake,
            "boundary_influx": self.boundary_influx,
            "mass_balance": abs(self.boundary_influx - self.total_uptake)
            / max(abs(self.total_uptake), 1e-300),
            "decay_length": self.decay_length,
            "residual": self.steady.residual,
            "newton_iterations": self.steady.iterations,
        }

    def summary(self) -> str:
        d = self.to_dict()
        lines = [
            f"steady gradient of {self.field}: {d['max']:.6g} ... {d['min']:.6g} "
            f"(Newton, {d['newton_iterations']} iterations, residual {d['residual']:.2e})",
            f"  uptake int q dV = {d['total_uptake']:.6g}; influx through the boundary "
            f"{d['boundary_influx']:.6g} (relative difference {d['mass_balance']:.1e})",
        ]
        if self.decay_length is not None:
            lines.append(f"  decay length (fall by e from the first cell): {self.decay_length:.6g}")
        return "\n".join(lines)

    __str__ = summary

    def dataset(self) -> Any:
        ds = self.steady.data.copy()
        q = self.sink.astype(np.float64, copy=True)
        if self.grid.mask is not None:
            q[~self.grid.mask] = np.nan
        ds["q"] = (self.grid.axes, q)
        ds["q"].attrs.update(
            {"long_name": "sink rho_cells*u(c) + k_deg*c", "quantity": "amount per volume per time"}
        )
        ds.attrs.update(
            {"total_uptake": self.total_uptake, "boundary_influx": self.boundary_influx}
        )
        return ds

    def save(self, directory: Path) -> list[Path]:
        """``gradient.nc``: the steady field and the sink."""
        path = directory / "gradient.nc"
        with atomic_path(path) as tmp:
            self.dataset().to_netcdf(tmp, engine="h5netcdf")
        return [path]


def boundary_influx(model: ReactionDiffusion, species: str, values: np.ndarray) -> float:
    """Net amount per time entering the active domain through the box's sides (the
    finite-volume face fluxes of :mod:`scalebridge.space.boundary`)."""
    from ..space.boundary import Periodic, face_coefficients

    g = model.grid
    i = model.species.index(species)
    D = np.broadcast_to(np.asarray(model.diffusivities[i], dtype=np.float64), g.shape)
    act = g.active
    total = 0.0
    for k, a in enumerate(g.axes):
        area = g.cell_volume / g.spacing[k]
        for side, idx in ((f"{a}-", 0), (f"{a}+", g.shape[k] - 1)):
            cond = model.conditions(species)[side]
            if isinstance(cond, Periodic):
                continue
            c_P = np.take(values, idx, axis=k)
            p, q = face_coefficients(cond, np.take(D, idx, axis=k), g.spacing[k])
            flux = (p - q * c_P) * np.take(act, idx, axis=k)
            total += float(np.sum(flux)) * area
    return total


# =============================================================================================
# Timescales


@dataclass(frozen=True)
class Timescales:
    """The pipeline's timescales (see the module docstring); ``None`` when a stage that would
    give one was replaced by a given law."""

    t_molecular: float | None
    t_capture: float | None
    t_cell: float
    t_diffusion: float
    t_decay: float
    threshold: float = SEPARATION
    length: float = math.nan
    diffusivity: float = math.nan

    @property
    def t_tissue(self) -> float:
        return min(self.t_diffusion, self.t_decay)

    @property
    def cell_scale(self) -> float:
        """The faster of the cell-scale times (capture and uptake turnover)."""
        return min(t for t in (self.t_capture, self.t_cell) if t is not None)

    @property
    def ratios(self) -> dict[str, float | None]:
        m = self.t_molecular
        return {
            "cell/molecular": None if m is None else self.cell_scale / m,
            "capture/molecular": (
                None if m is None or self.t_capture is None else self.t_capture / m
            ),
            "uptake/molecular": None if m is None else self.t_cell / m,
            "tissue/cell": self.t_tissue / self.t_cell,
        }

    def problems(self) -> list[str]:
        """One sentence per ratio below the threshold, with the numbers."""
        th = self.threshold
        out = []
        m = self.t_molecular
        if m is not None:
            if self.t_capture is not None and self.t_capture < th * m:
                out.append(
                    f"ligand capture t_capture = {_g(self.t_capture)} is only "
                    f"{self.t_capture / m:.3g} x the receptor relaxation t_molecular = {_g(m)} "
                    f"(needs >= {th:g}): ligand bound to receptors is not negligible, the QSSA "
                    "uptake law does not hold while the gradient forms"
                )
            if self.t_cell < th * m:
                out.append(
                    f"uptake turnover t_cell = {_g(self.t_cell)} is only {self.t_cell / m:.3g} x "
                    f"the receptor relaxation t_molecular = {_g(m)} (needs >= {th:g}): the "
                    "receptors do not follow the ligand quasi-statically"
                )
        if self.t_tissue < th * self.t_cell:
            which = "diffusion L^2/D_eff" if self.t_diffusion <= self.t_decay else "decay 1/k_deg"
            out.append(
                f"the tissue time t_tissue = {_g(self.t_tissue)} ({which}) is only "
                f"{self.t_tissue / self.t_cell:.3g} x the uptake turnover t_cell = "
                f"{_g(self.t_cell)} (needs >= {th:g}): cells and tissue evolve on the same "
                "timescale, so the cells' state matters at the tissue scale (couple cells and "
                "tissue concurrently)"
            )
        return out

    @property
    def molecular_separated(self) -> bool:
        """Whether the receptors are fast next to the cell scale (the QSSA uptake law holds;
        True when t_molecular is unknown)."""
        m = self.t_molecular
        if m is None:
            return True
        th = self.threshold
        cap_ok = self.t_capture is None or self.t_capture >= th * m
        return cap_ok and self.t_cell >= th * m

    @property
    def separated(self) -> bool:
        return not self.problems()

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_molecular": self.t_molecular,
            "t_capture": _finite_or_none(self.t_capture),
            "t_cell": _finite_or_none(self.t_cell),
            "t_diffusion": _finite_or_none(self.t_diffusion),
            "t_decay": _finite_or_none(self.t_decay),
            "t_tissue": _finite_or_none(self.t_tissue),
            "length": self.length,
            "diffusivity": self.diffusivity,
            "threshold": self.threshold,
            "ratios": {k: _finite_or_none(v) for k, v in self.ratios.items()},
            "separated": self.separated,
            "problems": self.problems(),
        }

    def summary(self) -> str:
        rows = [
            ("t_molecular", "slowest receptor relaxation", self.t_molecular),
            ("t_capture", "ligand capture by free receptors", self.t_capture),
            ("t_cell", "uptake turnover 1/(rho u')", self.t_cell),
            ("t_diffusion", f"L^2/D_eff, L = {self.length:.4g}", self.t_diffusion),
            ("t_decay", "1/k_deg", self.t_decay),
        ]
        lines = ["timescales:"]
        lines += [f"  {name:<12}{_g(t):>10}   {what}" for name, what, t in rows]
        r = self.ratios
        if r["cell/molecular"] is not None:
            lines.append(
                f"  cell/molecular = {r['cell/molecular']:.3g}, tissue/cell = "
                f"{_g(r['tissue/cell'])} (separated when both >= {self.threshold:g})"
            )
        else:
            lines.append(
                f"  tissue/cell = {_g(r['tissue/cell'])} (separated when >= "
                f"{self.threshold:g}); t_molecular unknown: the uptake law was given"
            )
        probs = self.problems()
        if probs:
            lines.append("  NOT SEPARATED:")
            lines += [f"  - {p}" for p in probs]
        else:
            lines.append("  the scales are separated: the hierarchical model holds")
        return "\n".join(lines)

    __str__ = summary

    def warning_text(self) -> str:
        text = (
            f"scales not separated (threshold ratio {self.threshold:g}): "
            + "; ".join(self.problems())
            + "."
        )
        if not self.molecular_separated:
            text += (
                " Resolve the receptors in every grid cell "
                "(HierarchicalPipeline.resolved_model()) or use the concurrent hybrid."
            )
        return text


# =============================================================================================
# The pipeline

_INPUTS = (
    "grid",
    "cell_density",
    "boundary",
    "network",
    "values",
    "ligand",
    "fast",
    "field",
    "microstructure",
    "diffusivity",
    "uptake",
    "decay",
    "reference_concentration",
    "threshold",
    "source",
)


class HierarchicalPipeline:
    """Molecular network -> QSSA uptake law -> tissue sink -> tissue PDE -> gradient.

    Parameters
    ----------
    grid:
        The tissue :class:`~scalebridge.space.grid.Grid`.
    cell_density:
        ``rho_cells``: cells per unit volume, in the units that turn per-cell amounts into the
        concentration unit of the ligand.
    boundary:
        Boundary conditions of the ligand field, ``{side: condition}`` (as in
        :class:`~scalebridge.space.boundary.BoundaryConditions`), e.g. ``{"x-":
        Dirichlet(c0)}`` for a source at x = 0.
    network, values, ligand, fast:
        The per-cell network (default :func:`scalebridge.reduce.receptor_uptake`), values for
        its parameters, the ligand species and the fast (receptor) species.
    field:
        Name of the ligand field in the tissue (default: the ligand's id).
    microstructure / diffusivity:
        Exactly one: a unit-cell microstructure (array of local diffusivities, a spec mapping
        as in YAML scenarios' ``homogenize:``, or a
        :class:`~scalebridge.space.homogenize.HomogenizationResult`), or ``D_eff`` itself
        (number or tensor), which replaces the homogenization stage.
    uptake:
        Replaces the molecular and QSSA stages: an :class:`UptakeLaw`, or text in the field
        name with numbers (``"2*c/(300 + c)"``).
    decay:
        Linear decay rate ``k_deg`` of the ligand in the tissue (default 0).
    reference_concentration:
        Upper end of the concentrations at which the timescales are evaluated (default: the
        largest Dirichlet value, or Robin ``g/a``, of the ligand's boundary conditions).
    threshold:
        Ratio between consecutive timescales required for separation (default 10).

    Stages are computed on first use and kept; :meth:`run` computes them all.  Use
    :meth:`replace` to change inputs or stages (a new pipeline that reuses the unchanged
    upstream stages).
    """

    def __init__(
        self,
        grid: Grid,
        *,
        cell_density: float,
        boundary: Mapping[str, Any],
        network: ReactionNetwork | None = None,
        values: Mapping[str, float] | None = None,
        ligand: str = "L",
        fast: Sequence[str] = ("C", "R"),
        field: str | None = None,
        microstructure: Any = None,
        diffusivity: Any = None,
        uptake: UptakeLaw | str | None = None,
        decay: float = 0.0,
        reference_concentration: float | None = None,
        threshold: float = SEPARATION,
        source: str | None = None,
    ):
        if not isinstance(grid, Grid):
            raise ModelError("a hierarchical pipeline needs a Grid", source=source)
        rho = _positive(cell_density, "cell_density", source, allow_zero=False)
        k_deg = _positive(decay, "decay", source, allow_zero=True)
        if not (isinstance(threshold, int | float) and threshold > 1):
            raise OptionError(f"threshold must be a number > 1, got {threshold!r}")
        if (microstructure is None) == (diffusivity is None):
            raise ModelError(
                "give exactly one of microstructure (homogenized) and diffusivity (D_eff itself)",
                source=source,
            )
        fld = field or ligand
        if not fld.isidentifier():
            raise ModelError(f"field name {fld!r} is not a valid name", source=source)
        if isinstance(uptake, str):
            uptake = UptakeLaw.from_text(uptake, fld)
        if uptake is not None and not isinstance(uptake, UptakeLaw):
            raise ModelError("uptake must be an UptakeLaw or an expression text", source=source)
        self._in: dict[str, Any] = {
            "grid": grid,
            "cell_density": rho,
            "boundary": dict(boundary),
            "network": network,
            "values": dict(values or {}),
            "ligand": ligand,
            "fast": tuple(fast),
            "field": field,
            "microstructure": microstructure,
            "diffusivity": diffusivity,
            "uptake": uptake,
            "decay": k_deg,
            "reference_concentration": reference_concentration,
            "threshold": float(threshold),
            "source": source,
        }
        self._field = fld
        # validate the boundary conditions now (names the side at fault)
        self._bcs = BoundaryConditions(grid, self._in["boundary"], species=fld)
        self._cache: dict[str, Any] = {}
        self._warned = False

    # ------------------------------------------------------------------ inputs
    @property
    def inputs(self) -> dict[str, Any]:
        """The constructor arguments (a copy)."""
        return dict(self._in)

    @property
    def field(self) -> str:
        """The name of the ligand field in the tissue."""
        return self._field

    @property
    def grid(self) -> Grid:
        return self._in["grid"]

    @property
    def reference_concentration(self) -> float:
        """Upper end of the concentrations the timescales are evaluated over."""
        given = self._in["reference_concentration"]
        if given is not None:
            return _positive(given, "reference_concentration", self._in["source"], allow_zero=False)
        best = 0.0
        for cond in self._bcs.values():
            if isinstance(cond, Dirichlet):
                best = max(best, float(np.max(cond.value)))
            elif isinstance(cond, Robin):
                a = np.asarray(cond.a, dtype=np.float64)
                g = np.asarray(cond.g, dtype=np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    r = np.where(a > 0, g / np.where(a > 0, a, 1.0), 0.0)
                best = max(best, float(np.max(r)))
        return best

    def replace(self, **changes: Any) -> HierarchicalPipeline:
        """A new pipeline with ``changes`` to the constructor arguments (e.g.
        ``uptake=UptakeLaw.michaelis_menten(2, 300)``, ``diffusivity=0.5``,
        ``cell_density=...``).  Giving ``diffusivity`` drops ``microstructure`` and vice
        versa; giving ``uptake`` bypasses the molecular stage (``uptake=None`` restores it).
        Stages upstream of every change are reused."""
        unknown = sorted(set(changes) - set(_INPUTS))
        if unknown:
            raise OptionError(
                f"replace: unknown input '{unknown[0]}' (inputs: {', '.join(_INPUTS)})"
            )
        new = dict(self._in)
        new.update(changes)
        if "diffusivity" in changes and changes["diffusivity"] is not None:
            new["microstructure"] = None
        if "microstructure" in changes and changes["microstructure"] is not None:
            new["diffusivity"] = None
        p = HierarchicalPipeline(**new)
        keep: set[str] = set()
        mol_inputs = {
            "network",
            "values",
            "ligand",
            "fast",
            "reference_concentration",
            "boundary",
            "source",
        }
        if not (set(changes) & mol_inputs):
            keep.add("molecular")
        if not (set(changes) & {"microstructure", "diffusivity", "grid", "source"}):
            keep.add("diffusivity")
        for k in keep:
            if k in self._cache:
                p._cache[k] = self._cache[k]
        return p

    # ------------------------------------------------------------------ stages
    def _stage(self, name: str, build: Any) -> Any:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    @property
    def molecular(self) -> MolecularStage | None:
        """Stage 1 (None when the uptake law is given)."""
        if self._in["uptake"] is not None:
            return None

        def build() -> MolecularStage:
            net = self._in["network"]
            if net is None:
                from ..reduce.qssa import receptor_uptake

                net = receptor_uptake()
            if self._in["values"]:
                net = net.with_values(self._in["values"])
            return molecular_stage(
                net,
                ligand=self._in["ligand"],
                fast=self._in["fast"],
                c_ref=self.reference_concentration,
                source=self._in["source"],
            )

        return self._stage("molecular", build)

    @property
    def uptake(self) -> UptakeLaw:
        """Stage 2: ``u(c)`` in the field's name."""
        given = self._in["uptake"]
        if given is not None:
            return given.renamed(self.field)
        mol = self.molecular
        assert mol is not None
        return mol.law.renamed(self.field)

    @property
    def diffusivity(self) -> DiffusivityStage:
        """Stage 3: ``D_eff``."""
        return self._stage(
            "diffusivity",
            lambda: diffusivity_stage(
                ndim=self.grid.ndim,
                microstructure=self._in["microstructure"],
                diffusivity=self._in["diffusivity"],
                source=self._in["source"],
            ),
        )

    @property
    def sink(self) -> SinkStage:
        """Stage 4: ``q(c) = rho_cells u(c) + k_deg c``."""
        return self._stage(
            "sink",
            lambda: SinkStage(self.uptake, self._in["cell_density"], self._in["decay"], self.field),
        )

    @property
    def tissue(self) -> TissueStage:
        """Stage 5: the tissue PDE."""

        def build() -> TissueStage:
            f = self.field
            model = ReactionDiffusion(
                self.grid,
                {f: self.diffusivity.value},
                reactions={f: fold(Call("neg", (self.sink.expression,)))},
                boundary=self._in["boundary"],
                id="tissue",
                source=self._in["source"],
            )
            return TissueStage(model, f)

        return self._stage("tissue", build)

    @property
    def gradient(self) -> GradientStage:
        """Stage 6: the steady gradient (computes the timescales first, which may warn)."""
        self.timescales  # noqa: B018 -- warns when the scales are not separated

        def build() -> GradientStage:
            from ..space.steady import steady_state

            model = self.tissue.model
            ss = steady_state(model)
            c = ss.values(self.field)
            act = self.grid.active
            q = np.where(act, self.sink(np.where(act, c, 0.0)), 0.0)
            total = self.grid.integrate(q)
            influx = boundary_influx(model, self.field, np.where(act, c, 0.0))
            return GradientStage(
                ss, self.field, self.grid, q, total, influx, _decay_length(self.grid, c)
            )

        return self._stage("gradient", build)

    @property
    def timescales(self) -> Timescales:
        """The timescales (warns once, with :class:`TimescaleWarning`, when the scales are not
        separated)."""
        ts = self._stage("timescales", self._timescales)
        if not self._warned:
            self._warned = True
            if not ts.separated:
                warnings.warn(ts.warning_text(), TimescaleWarning, stacklevel=2)
        return ts

    def _timescales(self) -> Timescales:
        rho = float(self._in["cell_density"])
        c_ref = self.reference_concentration
        mol = self.molecular
        law = self.uptake
        t_m = mol.t_molecular if mol is not None else law.relaxation_time
        t_cap = None
        if mol is not None:
            t_cap = math.inf if mol.capture_rate <= 0 else 1.0 / (rho * mol.capture_rate)
        cs = np.linspace(0.0, c_ref, _N_SAMPLES) if c_ref > 0 else np.zeros(1)
        slope = float(np.max(law.slope(cs)))
        t_cell = math.inf if slope <= 0 else 1.0 / (rho * slope)
        D = self.diffusivity.value
        Lmax = max(self.grid.lengths)
        k_deg = float(self._in["decay"])
        return Timescales(
            t_molecular=t_m,
            t_capture=t_cap,
            t_cell=t_cell,
            t_diffusion=Lmax**2 / D,
            t_decay=math.inf if k_deg == 0 else 1.0 / k_deg,
            threshold=self._in["threshold"],
            length=Lmax,
            diffusivity=D,
        )

    def run(self) -> HierarchicalPipeline:
        """Compute every stage (and the timescales, which may warn); returns ``self``."""
        self.timescales  # noqa: B018
        self.molecular  # noqa: B018
        self.diffusivity  # noqa: B018
        self.tissue  # noqa: B018
        self.gradient  # noqa: B018
        return self

    # ------------------------------------------------------------------ transient, resolved
    def transient(
        self,
        *,
        t_end: float | None = None,
        n_points: int | None = None,
        times: Sequence[float] | None = None,
        method: str = "crank-nicolson",
        dt: float | None = None,
        initial: Any = 0.0,
        progress: bool | None = None,
    ) -> Result:
        """The gradient as it forms from ``initial`` (default 0): the tissue PDE solved by
        :func:`scalebridge.space.stepping.solve` (``dt`` default ``min(t_cell, t_tissue)/200``).
        """
        from ..space.stepping import solve

        if dt is None:
            ts = self.timescales
            dt = min(ts.t_cell, ts.t_tissue) / 200.0
        return solve(
            self.tissue.model,
            method,
            t_end=t_end,
            n_points=n_points,
            times=times,
            dt=dt,
            initial={self.field: initial},
            progress=progress,
        )

    def resolved_model(self) -> ReactionDiffusion:
        """The concurrent (direct) description: the ligand field and the receptor states in
        every grid cell, without the QSSA.

        Ligand: ``dc/dt = div(D_eff grad c) + rho_cells sum_j N_Lj v_j - k_deg c``; every other
        species the network's reactions change and some rate reads (the receptor states), per
        cell and not diffusing: ``dy/dt = sum_j N_yj v_j / size``.  A conservation law among
        the receptor states (``R + C = R_T``) holds in every cell, so one of its species (the
        first in model order) is written through the others (``R = R_T - C``), which keeps the
        steady-state Jacobian regular; :meth:`resolved_eliminated` gives these expressions.
        Species no rate reads (cumulative counters such as the internalized ligand ``Li``) are
        left out: they do not act back and have no steady state.  Start it from
        :meth:`resolved_initial`.
        """
        mol = self._need_molecular()
        net = mol.network
        f = self.field
        L = mol.ligand
        if f != L and f in net.species_map:
            raise ModelError(f"field name '{f}' clashes with a species of the network", element=f)
        fields, elim = self._resolved_plan(mol)
        species = [L, *fields]
        rates = _species_rates(net, species)
        env = _numeric_env(net)
        num_env: dict[str, Expr] = {k: Num(v) for k, v in env.items()}
        rename = {L: Sym(f)}
        rho = float(self._in["cell_density"])

        def final(e: Expr) -> Expr:
            return fold(substitute(substitute(substitute(e, elim), num_env), rename))

        reactions: dict[str, Expr] = {}
        lig: Expr = Call("mul", (Num(rho), rates[L]))
        if self._in["decay"]:
            lig = Call("sub", (lig, Call("mul", (Num(float(self._in["decay"])), Sym(L)))))
        reactions[f] = final(lig)
        for s in fields:
            reactions[s] = final(Call("div", (rates[s], Num(_compartment_size(net, s, env)))))
        diff_: dict[str, Any] = {f: self.diffusivity.value}
        diff_.update({s: 0.0 for s in fields})
        return ReactionDiffusion(
            self.grid,
            diff_,
            reactions=reactions,
            boundary={f: dict(self._in["boundary"])},
            id="resolved",
            source=self._in["source"],
        )

    def resolved_eliminated(self) -> dict[str, Expr]:
        """The receptor species :meth:`resolved_model` writes through conserved totals, as
        expressions in the others (e.g. ``R = R_T - C`` with the number for ``R_T``)."""
        mol = self._need_molecular()
        _, elim = self._resolved_plan(mol)
        env = {k: Num(v) for k, v in _numeric_env(mol.network).items()}
        return {k: fold(substitute(e, env)) for k, e in elim.items()}

    def _need_molecular(self) -> MolecularStage:
        mol = self.molecular
        if mol is None:
            raise OptionError(
                "the uptake law was given, so there is no molecular network to resolve"
            )
        return mol

    def _resolved_plan(self, mol: MolecularStage) -> tuple[list[str], dict[str, Expr]]:
        """The receptor fields, and the species eliminated by conservation laws among them."""
        from ..model.conservation import conservation_laws
        from ..space.reactions import network_initial

        net = mol.network
        read: set[str] = set()
        for r in net.reactions:
            if r.rate is not None:
                read |= symbols(r.rate)
        for rule in net.assignment_rules:
            read |= symbols(rule.math)
        candidates = [
            s.id
            for s in net.species
            if s.id != mol.ligand
            and s.id in read
            and net.reaction_changes(s.id)
            and not s.boundary_condition
            and not s.constant
        ]
        env = _numeric_env(net)
        init = network_initial(net, {})
        elim: dict[str, Expr] = {}
        for law in conservation_laws(net):
            if not set(law.species) <= set(candidates):
                continue
            free = [s for s in law.species if s not in elim]
            if not free:
                continue
            e = free[0]
            # amounts: sum_i w_i size_i [S_i] = total, from the initial state
            size = {s: _compartment_size(net, s, env) for s in law.species}
            total = sum(w * size[s] * init.get(s, 0.0) for s, w in law.coefficients.items())
            others: list[Expr] = [
                Call("mul", (Num(w * size[s]), Sym(s)))
                for s, w in law.coefficients.items()
                if s != e
            ]
            rest = Call("add", tuple(others)) if len(others) > 1 else others[0]
            expr = Call(
                "div",
                (Call("sub", (Num(total), rest)), Num(law.coefficients[e] * size[e])),
            )
            elim[e] = fold(substitute(expr, elim))
        return [s for s in candidates if s not in elim], elim

    def resolved_initial(self, concentration: float = 0.0) -> dict[str, Any]:
        """Initial values for :meth:`resolved_model`: the ligand at ``concentration`` and the
        receptor states at their quasi-steady state there."""
        mol = self._need_molecular()
        fields, _ = self._resolved_plan(mol)
        out: dict[str, Any] = {self.field: float(concentration)}
        states = mol.receptor_states(float(concentration))
        init = None
        for s in fields:
            if s in states:
                out[s] = float(states[s])
            else:
                from ..space.reactions import network_initial

                init = init if init is not None else network_initial(mol.network, {})
                out[s] = float(init.get(s, 0.0))
        return out

    # ------------------------------------------------------------------ reports
    def to_dict(self) -> dict[str, Any]:
        """Every stage as plain data (JSON-ready)."""
        mol = self.molecular
        return {
            "molecular": None if mol is None else mol.to_dict(),
            "uptake": self.uptake.to_dict(),
            "diffusivity": self.diffusivity.to_dict(),
            "sink": self.sink.to_dict(),
            "tissue": self.tissue.to_dict(),
            "gradient": self.gradient.to_dict(),
            "timescales": self.timescales.to_dict(),
        }

    def summary(self) -> str:
        parts = []
        mol = self.molecular
        if mol is not None:
            parts.append("1. " + mol.summary())
        else:
            parts.append("1. molecular stage: replaced by the given uptake law")
        parts += [
            "2. " + self.uptake.summary(),
            "3. " + self.diffusivity.summary(),
            "4. " + self.sink.summary(),
            "5. " + self.tissue.summary(),
            "6. " + self.gradient.summary(),
            self.timescales.summary(),
        ]
        return "\n".join(parts)

    __str__ = summary

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write every stage into ``directory`` (created if missing): ``pipeline.json``,
        ``molecular_network.xml`` and ``reduced_network.xml`` (SBML; when derived),
        ``microstructure.nc`` (when homogenized) and ``gradient.nc``; returns the paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        mol = self.molecular
        if mol is not None:
            files += mol.save(d)
        files += self.diffusivity.save(d)
        files += self.gradient.save(d)
        path = d / "pipeline.json"
        atomic_write_text(
            path, json.dumps(json_safe(self.to_dict()), indent=2, allow_nan=False) + "\n"
        )
        files.append(path)
        return files


def _decay_length(grid: Grid, c: np.ndarray) -> float | None:
    if grid.ndim != 1 or grid.mask is not None:
        return None
    x = grid.coordinate(0)
    c = np.asarray(c, dtype=np.float64)
    if not (c[0] > 0):
        return None
    target = c[0] / math.e
    below = np.nonzero(c <= target)[0]
    if below.size == 0:
        return None
    i = int(below[0])
    # log-linear interpolation between the two cells around the crossing
    la, lb = math.log(c[i - 1]), math.log(max(c[i], 1e-300))
    xc = x[i - 1] + (math.log(target) - la) * (x[i] - x[i - 1]) / (lb - la)
    return float(xc - x[0])


def _positive(v: Any, name: str, source: str | None, *, allow_zero: bool) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ModelError(f"{name} must be a number, got {v!r}", source=source) from None
    ok = math.isfinite(x) and (x >= 0 if allow_zero else x > 0)
    if not ok:
        what = "a finite number >= 0" if allow_zero else "a positive finite number"
        raise ModelError(f"{name} must be {what}, got {v!r}", source=source)
    return x
