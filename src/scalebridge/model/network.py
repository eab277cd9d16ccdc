"""The reaction-network model: inert, validated data.

A :class:`ReactionNetwork` holds compartments, species, parameters, reactions, rules, initial
assignments, function definitions and events, with all math as expression trees
(:mod:`scalebridge.model.expr`).  It knows nothing about solvers.  Constructing one validates it
(:mod:`scalebridge.model.validate`): unknown symbols, duplicate ids, impossible stoichiometry and
conflicting rules raise :class:`~scalebridge.errors.ModelError` naming the element.

Conventions (SBML Level 3 semantics):

* A species' symbol in math means its concentration (amount / compartment size) unless
  ``has_only_substance_units`` is set, when it means its amount.
* Reaction rates (kinetic laws) are in substance per time.  For a species changed by reactions,
  d(amount)/dt = cf * sum_j stoich_ij * rate_j, where cf is the species' conversion factor, else
  the model's, else 1.
* A rate rule on a species sets d(value)/dt of the species' symbol (concentration or amount).
* The symbol of a reaction in math is its rate; the id of a species reference its stoichiometry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .expr import Expr


@dataclass(frozen=True)
class Compartment:
    id: str
    size: float | None = 1.0
    spatial_dimensions: float | None = 3.0
    constant: bool = True
    name: str = ""
    units: str | None = None


@dataclass(frozen=True)
class Species:
    """A species; give ``initial_amount`` or ``initial_concentration`` (or neither, when an
    initial assignment or assignment rule sets it)."""

    id: str
    compartment: str
    initial_amount: float | None = None
    initial_concentration: float | None = None
    has_only_substance_units: bool = False
    boundary_condition: bool = False
    constant: bool = False
    conversion_factor: str | None = None
    name: str = ""
    substance_units: str | None = None


@dataclass(frozen=True)
class Parameter:
    id: str
    value: float | None = None
    constant: bool = True
    name: str = ""
    units: str | None = None


@dataclass(frozen=True)
class SpeciesRef:
    """A reactant or product: species, stoichiometry, and an optional id (for math that reads
    or rules that set the stoichiometry; ``constant=False`` lets rules and events change it)."""

    species: str
    stoichiometry: float | None = 1.0
    id: str | None = None
    constant: bool = True
    name: str = ""


@dataclass(frozen=True)
class Reaction:
    """A reaction; ``rate`` is its kinetic law in substance per time (None: no kinetic law)."""

    id: str
    reactants: tuple[SpeciesRef, ...] = ()
    products: tuple[SpeciesRef, ...] = ()
    modifiers: tuple[str, ...] = ()
    rate: Expr | None = None
    local_parameters: tuple[Parameter, ...] = ()
    reversible: bool = False
    fast: bool = False
    compartment: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        for f in ("reactants", "products", "modifiers", "local_parameters"):
            v = getattr(self, f)
            if not isinstance(v, tuple):
                object.__setattr__(self, f, tuple(v))

    @property
    def species_refs(self) -> tuple[SpeciesRef, ...]:
        return self.reactants + self.products


@dataclass(frozen=True)
class AssignmentRule:
    """``variable = math`` at all times."""

    variable: str
    math: Expr
    id: str | None = None


@dataclass(frozen=True)
class RateRule:
    """``d variable / dt = math``."""

    variable: str
    math: Expr
    id: str | None = None


@dataclass(frozen=True)
class InitialAssignment:
    """``symbol = math`` at the initial time (overrides the declared value)."""

    symbol: str
    math: Expr
    id: str | None = None


@dataclass(frozen=True)
class FunctionDefinition:
    """``id(args) = body``; the body may use only its arguments and other functions."""

    id: str
    args: tuple[str, ...]
    body: Expr
    name: str = ""


@dataclass(frozen=True)
class EventAssignment:
    variable: str
    math: Expr


@dataclass(frozen=True)
class Event:
    """An SBML event.

    It *fires* when ``trigger`` goes from false to true (at t0 too, when ``initial_value`` is
    false and the trigger is true).  Its assignments are *executed* ``delay`` later (now when
    ``delay`` is None), with values computed at the trigger time when
    ``use_values_from_trigger_time``, else at execution.  A non-``persistent`` event is
    cancelled if its trigger turns false before execution.  Simultaneous executions go in
    descending ``priority``.
    """

    id: str
    trigger: Expr
    assignments: tuple[EventAssignment, ...] = ()
    delay: Expr | None = None
    priority: Expr | None = None
    initial_value: bool = True
    persistent: bool = True
    use_values_from_trigger_time: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.assignments, tuple):
            object.__setattr__(self, "assignments", tuple(self.assignments))


@dataclass(frozen=True)
class Units:
    """Model-wide unit declarations, kept as given (ids of SBML unit definitions)."""

    substance: str | None = None
    time: str | None = None
    volume: str | None = None
    area: str | None = None
    length: str | None = None
    extent: str | None = None
    definitions: tuple[tuple[str, tuple[tuple[str, float, int, float], ...]], ...] = ()


@dataclass(frozen=True, eq=True)
class ReactionNetwork:
    """A validated reaction network.  Use :meth:`replace` to derive a changed copy."""

    id: str = "model"
    name: str = ""
    compartments: tuple[Compartment, ...] = ()
    species: tuple[Species, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    reactions: tuple[Reaction, ...] = ()
    functions: tuple[FunctionDefinition, ...] = ()
    assignment_rules: tuple[AssignmentRule, ...] = ()
    rate_rules: tuple[RateRule, ...] = ()
    initial_assignments: tuple[InitialAssignment, ...] = ()
    events: tuple[Event, ...] = ()
    conversion_factor: str | None = None
    units: Units = field(default_factory=Units)
    notes: str = ""
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for f in (
            "compartments",
            "species",
            "parameters",
            "reactions",
            "functions",
            "assignment_rules",
            "rate_rules",
            "initial_assignments",
            "events",
        ):
            v = getattr(self, f)
            if not isinstance(v, tuple):
                object.__setattr__(self, f, tuple(v))
        from .validate import validate_network

        validate_network(self)

    # -- pickling: fields only (caches such as compiled models are rebuilt where unpickled) --
    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, val in state.items():
            object.__setattr__(self, k, val)

    # -- lookup ---------------------------------------------------------------------------
    @cached_property
    def compartment_map(self) -> dict[str, Compartment]:
        return {c.id: c for c in self.compartments}

    @cached_property
    def species_map(self) -> dict[str, Species]:
        return {s.id: s for s in self.species}

    @cached_property
    def parameter_map(self) -> dict[str, Parameter]:
        return {p.id: p for p in self.parameters}

    @cached_property
    def reaction_map(self) -> dict[str, Reaction]:
        return {r.id: r for r in self.reactions}

    @cached_property
    def function_map(self) -> dict[str, FunctionDefinition]:
        return {f.id: f for f in self.functions}

    @cached_property
    def species_ref_map(self) -> dict[str, tuple[Reaction, SpeciesRef]]:
        """Species references that have ids: id -> (reaction, reference)."""
        return {ref.id: (r, ref) for r in self.reactions for ref in r.species_refs if ref.id}

    @cached_property
    def assignment_rule_map(self) -> dict[str, AssignmentRule]:
        return {r.variable: r for r in self.assignment_rules}

    @cached_property
    def rate_rule_map(self) -> dict[str, RateRule]:
        return {r.variable: r for r in self.rate_rules}

    @cached_property
    def initial_assignment_map(self) -> dict[str, InitialAssignment]:
        return {a.symbol: a for a in self.initial_assignments}

    @property
    def species_ids(self) -> list[str]:
        return [s.id for s in self.species]

    @property
    def parameter_ids(self) -> list[str]:
        return [p.id for p in self.parameters]

    @property
    def reaction_ids(self) -> list[str]:
        return [r.id for r in self.reactions]

    def kind_of(self, name: str) -> str | None:
        """'species', 'compartment', 'parameter', 'reaction', 'species_ref', 'function',
        'event' or None."""
        if name in self.species_map:
            return "species"
        if name in self.compartment_map:
            return "compartment"
        if name in self.parameter_map:
            return "parameter"
        if name in self.reaction_map:
            return "reaction"
        if name in self.species_ref_map:
            return "species_ref"
        if name in self.function_map:
            return "function"
        if any(e.id == name for e in self.events):
            return "event"
        return None

    @cached_property
    def reactions_of_species(self) -> dict[str, tuple[Reaction, ...]]:
        """Species id -> the reactions it is a reactant or product of (in model order)."""
        out: dict[str, list[Reaction]] = {s.id: [] for s in self.species}
        for r in self.reactions:
            for sid in dict.fromkeys(ref.species for ref in r.species_refs):
                out.setdefault(sid, []).append(r)
        return {k: tuple(v) for k, v in out.items()}

    def reaction_changes(self, species_id: str) -> bool:
        """Whether reactions change the species (it is in a reaction and not boundary/constant)."""
        s = self.species_map[species_id]
        if s.boundary_condition or s.constant:
            return False
        return bool(self.reactions_of_species.get(species_id))

    @cached_property
    def functions_table(self) -> dict[str, tuple[tuple[str, ...], Expr]]:
        return {f.id: (f.args, f.body) for f in self.functions}

    # -- derived copies -------------------------------------------------------------------
    def replace(self, **changes: Any) -> ReactionNetwork:
        """A validated copy with fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_values(self, values: Mapping[str, float]) -> ReactionNetwork:
        """A copy with parameter values, compartment sizes or species initial values changed.

        A species value is taken in the species' own units (amount when it has only substance
        units, else concentration).  Unknown names raise :class:`ModelError`.
        """
        from ..errors import ModelError

        values = dict(values)
        given = set(values)
        params = []
        for p in self.parameters:
            if p.id in values:
                p = dataclasses.replace(p, value=float(values.pop(p.id)))
            params.append(p)
        comps = []
        for c in self.compartments:
            if c.id in values:
                c = dataclasses.replace(c, size=float(values.pop(c.id)))
            comps.append(c)
        species = []
        for s in self.species:
            if s.id in values:
                v = float(values.pop(s.id))
                if s.has_only_substance_units:
                    s = dataclasses.replace(s, initial_amount=v, initial_concentration=None)
                else:
                    s = dataclasses.replace(s, initial_amount=None, initial_concentration=v)
            species.append(s)
        if values:
            name = next(iter(values))
            raise ModelError(
                f"no parameter, compartment or species named '{name}' in model '{self.id}'",
                element=name,
            )
        # A given value must not be overridden by an initial assignment to the same symbol,
        # even when it equals the declared value.
        ias = tuple(a for a in self.initial_assignments if a.symbol not in given)
        return self.replace(
            parameters=tuple(params),
            compartments=tuple(comps),
            species=tuple(species),
            initial_assignments=ias,
        )

    def summary(self) -> str:
        return (
            f"{self.id}: {len(self.species)} species, {len(self.reactions)} reactions, "
            f"{len(self.parameters)} parameters, {len(self.compartments)} compartments, "
            f"{len(self.assignment_rules) + len(self.rate_rules)} rules, {len(self.events)} events"
        )
