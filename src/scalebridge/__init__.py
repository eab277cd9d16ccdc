"""scalebridge: multiscale biomedical modelling -- molecules, cells, tissues and their couplings.

The public API::

    import scalebridge as sb
    net = sb.load("model.xml")              # SBML, Antimony (.ant) or ODE text (.ode/.txt)
    res = sb.simulate(net, "ode", t_end=50, n_points=51)
    res.data, res.stats, res.to_csv("out.csv")

Attributes are imported on first use so that ``import scalebridge`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "load": "scalebridge.api",
    "simulate": "scalebridge.api",
    "solve": "scalebridge.api",
    "steady_state": "scalebridge.wellmixed.steady",
    "from_antimony": "scalebridge.api",
    "Result": "scalebridge.results",
    "TimeCourse": "scalebridge.problem",
    "ReactionNetwork": "scalebridge.model.network",
    "get_method": "scalebridge.methods",
    "ScalebridgeError": "scalebridge.errors",
    "ModelError": "scalebridge.errors",
    "UnsupportedFeatureError": "scalebridge.errors",
    "OptionError": "scalebridge.errors",
    "InputError": "scalebridge.errors",
    "SolverError": "scalebridge.errors",
}

__all__ = [
    "InputError",
    "ModelError",
    "OptionError",
    "ReactionNetwork",
    "Result",
    "ScalebridgeError",
    "SolverError",
    "TimeCourse",
    "UnsupportedFeatureError",
    "from_antimony",
    "get_method",
    "load",
    "simulate",
    "solve",
    "steady_state",
]

if TYPE_CHECKING:
    from .api import from_antimony, load, simulate, solve
    from .errors import (
        InputError,
        ModelError,
        OptionError,
        ScalebridgeError,
        SolverError,
        UnsupportedFeatureError,
    )
    from .methods import get_method
    from .model.network import ReactionNetwork
    from .problem import TimeCourse
    from .results import Result
    from .wellmixed.steady import steady_state


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scalebridge' has no attribute '{name}'")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
