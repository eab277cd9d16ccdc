"""Model layer: reaction networks as inert, validated data, and their readers and writers.

Nothing here imports a solver.
"""

from .expr import Call, Expr, FunCall, Num, Sym
from .network import (
    AssignmentRule,
    Compartment,
    Event,
    EventAssignment,
    FunctionDefinition,
    InitialAssignment,
    Parameter,
    RateRule,
    Reaction,
    ReactionNetwork,
    Species,
    SpeciesRef,
    Units,
)
from .parse import parse_expr

__all__ = [
    "AssignmentRule",
    "Call",
    "Compartment",
    "Event",
    "EventAssignment",
    "Expr",
    "FunCall",
    "FunctionDefinition",
    "InitialAssignment",
    "Num",
    "Parameter",
    "RateRule",
    "Reaction",
    "ReactionNetwork",
    "Species",
    "SpeciesRef",
    "Sym",
    "Units",
    "parse_expr",
]
