"""Exception hierarchy.

Every error that reaches a user is a :class:`ScalebridgeError`.  The command line maps
:class:`InputError` (and its subclasses) to exit code 2 and :class:`SolverError` to exit code 3.
"""

from __future__ import annotations


class ScalebridgeError(Exception):
    """Base class of all scalebridge errors."""


class InputError(ScalebridgeError):
    """Bad input or options found before anything is simulated (CLI exit 2)."""


class ModelError(InputError):
    """A model is invalid: unknown symbol, duplicate id, impossible stoichiometry, bad syntax.

    ``element`` names the offending model element where one is known; ``source`` names the file.
    """

    def __init__(self, message: str, *, element: str | None = None, source: str | None = None):
        self.element = element
        self.source = source
        super().__init__(message)

    def __str__(self) -> str:
        msg = super().__str__()
        parts = []
        if self.source:
            parts.append(str(self.source))
        if self.element and f"'{self.element}'" not in msg:
            parts.append(f"element '{self.element}'")
        return f"{': '.join(parts)}: {msg}" if parts else msg


class UnsupportedFeatureError(ModelError):
    """A valid construct that scalebridge does not support; names the construct and the element."""

    def __init__(
        self,
        construct: str,
        *,
        element: str | None = None,
        source: str | None = None,
        detail: str = "",
    ):
        self.construct = construct
        where = f" (element '{element}')" if element else ""
        extra = f": {detail}" if detail else ""
        super().__init__(f"unsupported {construct}{where}{extra}", element=element, source=source)


class OptionError(InputError):
    """An option or argument is invalid (unknown method, bad time grid, ...)."""


class SolverError(ScalebridgeError):
    """A failure during a run: a blow-up, a failed step, a negative propensity (CLI exit 3).

    ``variable`` and ``time`` say where it happened when known.
    """

    def __init__(self, message: str, *, variable: str | None = None, time: float | None = None):
        self.variable = variable
        self.time = time
        super().__init__(message)
