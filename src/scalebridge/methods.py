"""Method names -> method classes.  The names are the same everywhere (API, CLI, files).

Methods are stateless strategies: options go to the constructor.  A deterministic method
(``ode``) and ``fsp`` (the distribution itself, not samples) solve a problem with
``method.solve(problem)``; the sampling methods (``ssa``, ``tau-leap``, ``cle``) implement the
per-run contract of :mod:`scalebridge.wellmixed.stochastic_base` and are run as ensembles by
:func:`scalebridge.ensemble.run_ensemble`.

Method classes are imported when first asked for, so ``import scalebridge`` stays cheap and a
method whose module is missing from this installation is reported by name
(:class:`~scalebridge.errors.OptionError`) instead of breaking the others.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from typing import Any

from .errors import OptionError

__all__ = ["AVAILABLE", "METHOD_NAMES", "get_method", "method_class"]

METHOD_NAMES = ("ode", "ssa", "tau-leap", "cle", "fsp", "lna", "hybrid")

# name -> (module, class); names not listed are planned but not in this version.
_CLASSES: dict[str, tuple[str, str]] = {
    "ode": ("scalebridge.wellmixed.ode", "ODE"),
    "ssa": ("scalebridge.wellmixed.ssa", "SSA"),
    "tau-leap": ("scalebridge.wellmixed.tauleap", "TauLeap"),
    "cle": ("scalebridge.wellmixed.cle", "CLE"),
    "fsp": ("scalebridge.wellmixed.fsp", "FSP"),
    "lna": ("scalebridge.wellmixed.lna", "LNA"),
    "hybrid": ("scalebridge.wellmixed.hybrid", "Hybrid"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# Which methods this installation has (their modules exist; nothing is imported to find out).
AVAILABLE = tuple(n for n in METHOD_NAMES if n in _CLASSES and _installed(_CLASSES[n][0]))


def _unavailable(name: str) -> OptionError:
    available = [n for n in METHOD_NAMES if n in _CLASSES and _installed(_CLASSES[n][0])]
    return OptionError(
        f"method '{name}' is not available in this version; available: {', '.join(available)}"
    )


def method_class(name: str) -> type:
    """The class implementing method ``name`` (imported on first use)."""
    if name not in METHOD_NAMES:
        raise OptionError(f"unknown method '{name}'; methods are: {', '.join(METHOD_NAMES)}")
    if name not in _CLASSES:
        raise _unavailable(name)
    module_name, class_name = _CLASSES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:  # the module exists but something it imports is missing
            raise
        raise _unavailable(name) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise _unavailable(name)
    return cls


def get_method(name: str, **options: Any) -> Any:
    """An instance of the method called ``name`` with ``options``.

    Unknown options raise :class:`~scalebridge.errors.OptionError` listing the method's options.
    """
    cls = method_class(name)
    if dataclasses.is_dataclass(cls):
        known = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = [k for k in options if k not in known]
        if unknown:
            listing = ", ".join(known) if known else "none"
            plural = "s" if len(unknown) > 1 else ""
            raise OptionError(
                f"method '{name}' has no option{plural} {', '.join(map(repr, unknown))}; "
                f"its options are: {listing}"
            )
    try:
        return cls(**options)
    except TypeError as e:
        raise OptionError(f"method '{name}': {e}") from None
