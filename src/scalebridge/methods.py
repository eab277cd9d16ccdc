"""Method names -> method classes.  The names are the same everywhere (API, CLI, files).

Methods are stateless strategies: options go to the constructor; ``method.solve(problem)``
returns a :class:`~scalebridge.results.Result`.
"""

from __future__ import annotations

from typing import Any

from .errors import OptionError

METHOD_NAMES = ("ode", "ssa", "tau-leap", "cle", "fsp", "lna", "hybrid")
AVAILABLE = ("ode",)


def get_method(name: str, **options: Any) -> Any:
    """An instance of the method called ``name`` with ``options``."""
    if name == "ode":
        from .wellmixed.ode import ODE

        try:
            return ODE(**options)
        except TypeError as e:
            raise OptionError(f"method 'ode': {e}") from None
    if name in METHOD_NAMES:
        raise OptionError(
            f"method '{name}' is not available in this version; available: {', '.join(AVAILABLE)}"
        )
    raise OptionError(f"unknown method '{name}'; methods are: {', '.join(METHOD_NAMES)}")
