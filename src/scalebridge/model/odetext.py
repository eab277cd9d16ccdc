"""The ODE text format: explicit ODE models for structural identifiability and quick models.

Format
------
One statement per line; ``#`` starts a comment that runs to the end of the line::

    # comment
    parameters: k1, k2, V          unknown constant parameters
    known: a, b = 1/2              known constants (a value, or generic when none is given)
    inputs: u                      known time-varying inputs
    unknown_inputs: w              unknown time-varying inputs
    initial: x2 = 0, x3 = known, x4 = x0_tot
    dx1/dt = -k1*x1 + u            one line per state (d(x1)/dt is accepted too)
    y1 = x2 / V                    outputs: every other ``name = expression`` line

Rules
-----
* **Names** are plain identifiers ``[A-Za-z_][A-Za-z0-9_]*``; Python keywords such as ``lambda``
  are ordinary names.  Every name is declared once: a state by its equation, everything else in
  one section entry.  Declaring a name twice (in the same section or in two sections), a second
  equation for a state, and an output named like a state or a declared symbol are errors.
* **Sections** may appear anywhere and more than once; repeated section lines add their entries
  (``parameters: a`` then ``parameters: b`` declares both).  Entries are separated by commas
  outside parentheses.  ``parameters:``, ``inputs:`` and ``unknown_inputs:`` take bare names;
  ``known:`` entries are ``name`` (a generic known constant) or ``name = value`` with a constant
  expression (numbers and built-in constants only, such as ``1/2`` or ``2*pi``).
* **Initial conditions**: ``initial:`` entries are ``x = value`` (a constant expression),
  ``x = known`` or a bare ``x`` (known but generic), or ``x = expression`` of parameters and
  known constants (``x4 = x0_tot``).  The word ``known`` alone on the right is always this
  keyword.  States not listed have unknown initial conditions.
* **Expressions** go through :func:`scalebridge.model.parse.parse_expr`: ``+ - * /``, ``^`` and
  ``**`` (both power), comparisons, ``piecewise`` and the MathML functions.  Equations and
  outputs may use states, parameters, known constants and (unknown) inputs; outputs cannot use
  other outputs.  User-defined functions and ``rateOf`` do not exist in this format.
* **Time**: ``t`` and ``time`` denote the time variable unless the model declares that name as a
  state, parameter, known constant or input; a declared name always means the declared symbol
  (also over built-in constants such as ``pi``).
* Every error is a :class:`~scalebridge.errors.ModelError` naming the file (``source``), the
  line number and the element.  Nothing from the text is evaluated as Python.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .expr import Call, Expr, FunCall, Num, evaluate, format_number, symbols, to_infix, walk
from .network import (
    AssignmentRule,
    Compartment,
    InitialAssignment,
    Parameter,
    RateRule,
    ReactionNetwork,
    Species,
)
from .parse import parse_expr

__all__ = ["OdeModel", "parse_ode_text", "read_ode_text"]

SECTIONS = ("parameters", "known", "inputs", "unknown_inputs", "initial")
TIME_NAMES = ("t", "time")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME_RE = re.compile(rf"^{_NAME}$", re.ASCII)
_SECTION_RE = re.compile(rf"^\s*({'|'.join(SECTIONS)})\s*:(.*)$", re.ASCII)
_DERIV_RE = re.compile(
    rf"^\s*d\s*(?:\(\s*(?P<n1>{_NAME})\s*\)|(?P<n2>{_NAME}))\s*/\s*dt\s*=(?!=)(?P<rhs>.*)$",
    re.ASCII,
)
_ASSIGN_RE = re.compile(rf"^\s*(?P<name>{_NAME})\s*=(?!=)(?P<rhs>.*)$", re.ASCII)
_KINDS = {
    "parameters": "parameter",
    "known": "known constant",
    "inputs": "input",
    "unknown_inputs": "unknown input",
}


@dataclass(frozen=True)
class OdeModel:
    """An explicit ODE model ``dx/dt = f(x, p, k, u, w, t)``, ``y = g(x, p, k, u, w, t)``.

    Fields (all names distinct):

    * ``states`` -- state names in the order of their equations;
    * ``equations`` -- state -> right-hand side, in state order;
    * ``outputs`` -- output name -> expression, in file order;
    * ``parameters`` -- unknown constant parameters;
    * ``known`` -- known constants: name -> value, or None for a known but generic constant;
    * ``inputs`` -- known time-varying inputs; ``unknown_inputs`` -- unknown ones;
    * ``initial`` -- known initial conditions: state -> a number, an expression of parameters
      and known constants, or None (known but generic).  States without an entry have unknown
      initial conditions (see :attr:`unknown_initial`);
    * ``source`` -- the file it came from, quoted in errors.

    Time appears in expressions as ``Call("time")``.  The mappings are plain dicts for easy
    use and pickling; treat them as read-only.  Construction checks the invariants above and
    raises :class:`ModelError` naming the element.
    """

    states: tuple[str, ...]
    equations: dict[str, Expr]
    outputs: dict[str, Expr] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()
    known: dict[str, float | None] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    unknown_inputs: tuple[str, ...] = ()
    initial: dict[str, float | Expr | None] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for f in ("states", "parameters", "inputs", "unknown_inputs"):
            set_(self, f, tuple(getattr(self, f)))
        extra = [s for s in self.equations if s not in self.states]
        if extra:
            raise ModelError(
                f"equation for '{extra[0]}', which is not listed in states",
                element=extra[0],
                source=self.source,
            )
        set_(self, "equations", {s: self.equations[s] for s in self.states if s in self.equations})
        set_(self, "outputs", dict(self.outputs))
        set_(self, "known", {k: None if v is None else float(v) for k, v in self.known.items()})
        set_(
            self,
            "initial",
            {
                k: v if v is None or isinstance(v, Expr) else float(v)
                for k, v in self.initial.items()
            },
        )
        self._check()

    # -- derived views --------------------------------------------------------------------
    @property
    def symbols(self) -> dict[str, str]:
        """Every name usable in expressions -> its kind ('state', 'parameter', 'known constant',
        'input', 'unknown input')."""
        out = dict.fromkeys(self.states, "state")
        out.update(dict.fromkeys(self.parameters, "parameter"))
        out.update(dict.fromkeys(self.known, "known constant"))
        out.update(dict.fromkeys(self.inputs, "input"))
        out.update(dict.fromkeys(self.unknown_inputs, "unknown input"))
        return out

    @property
    def unknown_initial(self) -> tuple[str, ...]:
        """States whose initial conditions are unknown."""
        return tuple(s for s in self.states if s not in self.initial)

    @property
    def time_name(self) -> str | None:
        """The name that denotes time in this model's text (``t``, else ``time``), or None when
        both are declared symbols."""
        syms = self.symbols
        return next((n for n in TIME_NAMES if n not in syms), None)

    def kind_of(self, name: str) -> str | None:
        if name in self.outputs:
            return "output"
        return self.symbols.get(name)

    # -- checks ---------------------------------------------------------------------------
    def _check(self) -> None:
        src = self.source
        seen: dict[str, str] = {}
        groups: list[tuple[Sequence[str], str]] = [
            (self.states, "state"),
            (self.parameters, "parameter"),
            (tuple(self.known), "known constant"),
            (self.inputs, "input"),
            (self.unknown_inputs, "unknown input"),
            (tuple(self.outputs), "output"),
        ]
        for names, kind in groups:
            for n in names:
                if not isinstance(n, str) or not _NAME_RE.match(n):
                    raise ModelError(
                        f"{kind} name {n!r} is not an identifier", element=str(n), source=src
                    )
                if n in seen:
                    raise ModelError(
                        f"'{n}' is declared as {_a(seen[n])} and as {_a(kind)}",
                        element=n,
                        source=src,
                    )
                seen[n] = kind
        if not self.states:
            raise ModelError("the model has no states (no 'dx/dt = ...' equation)", source=src)
        for s in self.states:
            if s not in self.equations:
                raise ModelError(f"state '{s}' has no equation", element=s, source=src)
        allowed = set(self.symbols)
        for s, e in self.equations.items():
            _check_expr(e, allowed, s, f"the equation of '{s}'", src, self.outputs)
        for y, e in self.outputs.items():
            _check_expr(e, allowed, y, f"output '{y}'", src, self.outputs)
        for k, kv in self.known.items():
            if kv is not None and not math.isfinite(kv):
                raise ModelError(f"known constant '{k}' has value {kv}", element=k, source=src)
        init_allowed = set(self.parameters) | set(self.known)
        for s, v in self.initial.items():
            if s not in self.equations:
                raise ModelError(
                    f"initial condition for '{s}', which is not a state", element=s, source=src
                )
            if isinstance(v, Expr):
                _check_expr(v, init_allowed, s, f"the initial condition of '{s}'", src, {})
                if any(isinstance(n, Call) and n.op == "time" for n in walk(v)):
                    raise ModelError(
                        f"the initial condition of '{s}' depends on time", element=s, source=src
                    )
            elif v is not None and not math.isfinite(v):
                raise ModelError(f"initial condition of '{s}' is {v}", element=s, source=src)

    # -- conversions ----------------------------------------------------------------------
    def to_network(self, values: Mapping[str, float] | None = None) -> ReactionNetwork:
        """A simulatable :class:`ReactionNetwork` with the same equations.

        * one compartment ``default`` of size 1 (``default_`` etc. if a model name is
          ``default``);
        * each state a species with ``has_only_substance_units=True`` (so its symbol is its
          amount) and a rate rule ``d state/dt = equation``; its initial amount is
          ``values[state]``, else the numeric ``initial`` entry, else None (unknown or generic);
          an ``initial`` expression becomes an initial assignment;
        * unknown parameters and known constants become constant parameters with value
          ``values[name]``, else the known value, else None;
        * inputs and unknown inputs become non-constant parameters with value ``values[name]``
          or None;
        * outputs become non-constant parameters defined by assignment rules, so they can be
          requested as output variables.

        A time-varying input is a plain parameter here: before simulating, the caller must give
        it its time course, for example ``net.replace(assignment_rules=net.assignment_rules +
        (AssignmentRule("u", parse_expr("sin(time)")),))``.  Names in ``values`` must be
        states, parameters, known constants or inputs (:class:`ModelError` otherwise).
        """
        vals = dict(values or {})
        syms = self.symbols
        for name in vals:
            if name not in syms:
                what = "an output" if name in self.outputs else "not in the model"
                raise ModelError(
                    f"cannot set a value for '{name}': it is {what}",
                    element=name,
                    source=self.source,
                )
        taken = set(syms) | set(self.outputs)
        comp = "default"
        while comp in taken:
            comp += "_"
        species = []
        ias = []
        for s in self.states:
            amount: float | None = None
            init = self.initial.get(s)
            if s in vals:
                amount = float(vals[s])
            elif isinstance(init, Expr):
                ias.append(InitialAssignment(s, init))
            elif init is not None:
                amount = init
            species.append(Species(s, comp, initial_amount=amount, has_only_substance_units=True))
        params = []
        for p in self.parameters:
            params.append(Parameter(p, _opt_float(vals.get(p))))
        for k, v in self.known.items():
            params.append(Parameter(k, _opt_float(vals[k] if k in vals else v)))
        for u in (*self.inputs, *self.unknown_inputs):
            params.append(Parameter(u, _opt_float(vals.get(u)), constant=False))
        for y in self.outputs:
            params.append(Parameter(y, None, constant=False))
        return ReactionNetwork(
            id=_network_id(self.source),
            compartments=(Compartment(comp, 1.0),),
            species=tuple(species),
            parameters=tuple(params),
            rate_rules=tuple(RateRule(s, e) for s, e in self.equations.items()),
            assignment_rules=tuple(AssignmentRule(y, e) for y, e in self.outputs.items()),
            initial_assignments=tuple(ias),
            source=self.source,
        )

    def to_text(self) -> str:
        """The model in the ODE text format; :func:`parse_ode_text` reads it back equal."""
        tname = self.time_name
        consts = {"time": tname} if tname else None

        def infix(e: Expr, element: str) -> str:
            if tname is None and any(isinstance(n, Call) and n.op == "time" for n in walk(e)):
                raise ModelError(
                    "cannot write time: both 't' and 'time' are model names", element=element
                )
            return to_infix(e, consts)

        lines = []
        if self.parameters:
            lines.append("parameters: " + ", ".join(self.parameters))
        if self.known:
            lines.append(
                "known: "
                + ", ".join(
                    k if v is None else f"{k} = {_num_text(v)}" for k, v in self.known.items()
                )
            )
        if self.inputs:
            lines.append("inputs: " + ", ".join(self.inputs))
        if self.unknown_inputs:
            lines.append("unknown_inputs: " + ", ".join(self.unknown_inputs))
        if self.initial:
            parts = []
            for s, v in self.initial.items():
                if v is None:
                    parts.append(f"{s} = known")
                elif isinstance(v, Expr):
                    parts.append(f"{s} = {infix(v, s)}")
                else:
                    parts.append(f"{s} = {_num_text(v)}")
            lines.append("initial: " + ", ".join(parts))
        for s, e in self.equations.items():
            lines.append(f"d{s}/dt = {infix(e, s)}")
        for y, e in self.outputs.items():
            lines.append(f"{y} = {infix(e, y)}")
        return "\n".join(lines) + "\n"

    def replace(self, **changes: Any) -> OdeModel:
        """A checked copy with fields replaced."""
        return dataclasses.replace(self, **changes)


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _opt_float(v: float | None) -> float | None:
    return None if v is None else float(v)


def _num_text(v: float) -> str:
    s = format_number(v)
    return f"({s})" if s.startswith("-") else s


def _network_id(source: str | None) -> str:
    if not source:
        return "ode_model"
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(source).stem)
    if not stem or not re.match(r"[A-Za-z_]", stem):
        stem = "m_" + stem
    return stem


def _check_expr(
    e: Expr,
    allowed: set[str],
    element: str,
    where: str,
    source: str | None,
    outputs: Collection[str],
    line: int | None = None,
) -> None:
    at = f"line {line}: " if line is not None else ""
    for node in walk(e):
        if isinstance(node, FunCall):
            raise ModelError(
                f"{at}call of unknown function '{node.name}' in {where} "
                "(this format has no user-defined functions"
                + (f"; '{node.name}' is declared as a name here" if node.name in allowed else "")
                + ")",
                element=element,
                source=source,
            )
        if isinstance(node, Call) and node.op == "rateOf":
            raise ModelError(
                f"{at}rateOf is not allowed in {where}", element=element, source=source
            )
    unknown = sorted(symbols(e) - allowed)
    if unknown:
        name = unknown[0]
        if name in outputs:
            hint = "outputs cannot refer to other outputs"
        else:
            hint = "declare it under parameters:, known:, inputs: or unknown_inputs:"
        raise ModelError(
            f"{at}unknown symbol '{name}' in {where} ({hint})", element=element, source=source
        )


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------
_Fail = Callable[[int, str, str | None], ModelError]


@dataclass
class _Raw:
    """Pass-1 result: declarations and unparsed right-hand sides, with line numbers."""

    decl: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (kind, line)
    sections: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in _KINDS})
    known_rhs: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    initial: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    equations: dict[str, tuple[str, int]] = field(default_factory=dict)
    outputs: dict[str, tuple[str, int]] = field(default_factory=dict)


def _split_entries(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out]


def parse_ode_text(text: str, source: str | None = None) -> OdeModel:
    """Parse the ODE text format (see the module docstring) into an :class:`OdeModel`.

    ``source`` (a file name) is quoted in errors together with the line number.
    """
    if not isinstance(text, str):
        raise ModelError(f"expected text, got {type(text).__name__}", source=source)
    raw = _Raw()

    def fail(line: int, msg: str, element: str | None = None) -> ModelError:
        return ModelError(f"line {line}: {msg}", element=element, source=source)

    def declare(name: str, kind: str, line: int) -> None:
        if not _NAME_RE.match(name):
            raise fail(line, f"{kind} name {name!r} is not an identifier", name)
        if name in raw.outputs:
            prev = raw.outputs[name][1]
            raise fail(line, f"'{name}' is already defined as an output (line {prev})", name)
        if name in raw.decl:
            pkind, prev = raw.decl[name]
            if pkind == kind == "state":
                raise fail(line, f"second equation for state '{name}' (first on line {prev})", name)
            raise fail(line, f"'{name}' is already declared as {_a(pkind)} (line {prev})", name)
        raw.decl[name] = (kind, line)

    for lineno, full in enumerate(text.splitlines(), start=1):
        stmt = full.split("#", 1)[0].strip()
        if not stmt:
            continue
        m = _SECTION_RE.match(stmt)
        if m:
            section, body = m.group(1), m.group(2).strip()
            if not body:
                continue
            for entry in _split_entries(body):
                if not entry:
                    raise fail(lineno, f"empty entry in '{section}:'")
                name, eq, rhs = entry.partition("=")
                name, rhs_s = name.strip(), rhs.strip()
                if eq and (rhs_s.startswith("=") or name.endswith(("<", ">", "!"))):
                    raise fail(lineno, f"malformed entry {entry!r} in '{section}:'", name or None)
                if eq and not rhs_s:
                    raise fail(lineno, f"missing value after '=' in '{section}:'", name or None)
                if section == "initial":
                    if not _NAME_RE.match(name):
                        raise fail(lineno, f"malformed entry {entry!r} in 'initial:'", name or None)
                    if name in raw.initial:
                        prev = raw.initial[name][1]
                        raise fail(
                            lineno,
                            f"second initial condition for '{name}' (first on line {prev})",
                            name,
                        )
                    raw.initial[name] = (rhs_s if eq else None, lineno)
                    continue
                if eq and section != "known":
                    raise fail(
                        lineno,
                        f"'{section}:' takes names only, not '{entry}' "
                        "(known values go under 'known:')",
                        name or None,
                    )
                declare(name, _KINDS[section], lineno)
                raw.sections[section].append(name)
                if section == "known":
                    raw.known_rhs[name] = (rhs_s if eq else None, lineno)
            continue
        m = _DERIV_RE.match(stmt)
        if m:
            state = m.group("n1") or m.group("n2")
            declare(state, "state", lineno)
            raw.equations[state] = (m.group("rhs"), lineno)
            continue
        m = _ASSIGN_RE.match(stmt)
        if m:
            name = m.group("name")
            if name in raw.outputs:
                prev = raw.outputs[name][1]
                raise fail(lineno, f"output '{name}' is defined twice (first on line {prev})", name)
            if name in raw.decl:
                pkind, prev = raw.decl[name]
                raise fail(
                    lineno,
                    f"output '{name}' has the name of {_a(pkind)} (line {prev}); "
                    "state equations are written 'd" + name + "/dt = ...'"
                    if pkind == "state"
                    else f"output '{name}' has the name of {_a(pkind)} (line {prev})",
                    name,
                )
            raw.outputs[name] = (m.group("rhs"), lineno)
            continue
        snippet = stmt if len(stmt) <= 60 else stmt[:57] + "..."
        raise fail(
            lineno,
            f"cannot read {snippet!r}: expected a section ('parameters:', 'known:', 'inputs:', "
            "'unknown_inputs:', 'initial:'), an equation 'dx/dt = ...' or an output 'y = ...'",
        )

    if not raw.equations:
        raise ModelError("no state equations ('dx/dt = ...') found", source=source)

    names = set(raw.decl)
    time_names = tuple(n for n in TIME_NAMES if n not in names)

    def parse(rhs: str, element: str, line: int, where: str) -> Expr:
        try:
            return parse_expr(
                rhs.strip(), element=element, source=source, time_names=time_names, shadow=names
            )
        except ModelError as e:
            msg = str(e.args[0]) if e.args else str(e)
            raise fail(line, f"{msg} (in {where})", element) from None

    known: dict[str, float | None] = {}
    for k, (rhs_k, line) in raw.known_rhs.items():
        known[k] = (
            None
            if rhs_k is None
            else _constant(parse(rhs_k, k, line, f"the value of '{k}'"), k, line, fail)
        )

    allowed = names
    equations: dict[str, Expr] = {}
    for s, (rhs, line) in raw.equations.items():
        e = parse(rhs, s, line, f"the equation of '{s}'")
        _check_expr(e, allowed, s, f"the equation of '{s}'", source, raw.outputs, line)
        equations[s] = e
    outputs: dict[str, Expr] = {}
    for y, (rhs, line) in raw.outputs.items():
        e = parse(rhs, y, line, f"output '{y}'")
        _check_expr(e, allowed, y, f"output '{y}'", source, raw.outputs, line)
        outputs[y] = e

    init_allowed = set(raw.sections["parameters"]) | set(raw.sections["known"])
    initial: dict[str, float | Expr | None] = {}
    for s, (rhs_i, line) in raw.initial.items():
        if s not in raw.equations:
            kind = raw.decl.get(s, ("", 0))[0] or ("output" if s in raw.outputs else "")
            what = f"{_a(kind)}, not a state" if kind else "not a state of the model"
            raise fail(line, f"initial condition for '{s}', which is {what}", s)
        if rhs_i is None or rhs_i == "known":
            initial[s] = None
            continue
        where = f"the initial condition of '{s}'"
        e = parse(rhs_i, s, line, where)
        for node in walk(e):
            if isinstance(node, Call) and node.op == "time":
                raise fail(line, f"{where} depends on time", s)
        syms = symbols(e)
        bad = sorted(syms - init_allowed)
        if bad:
            kind = raw.decl.get(bad[0], ("", 0))[0]
            why = _a(kind) if kind else "not declared"
            raise fail(
                line,
                f"{where} uses '{bad[0]}', which is {why}; initial conditions may use only "
                "parameters and known constants",
                s,
            )
        _check_expr(e, init_allowed, s, where, source, {}, line)
        initial[s] = _constant(e, s, line, fail) if not syms else e

    return OdeModel(
        states=tuple(raw.equations),
        equations=equations,
        outputs=outputs,
        parameters=tuple(raw.sections["parameters"]),
        known=known,
        inputs=tuple(raw.sections["inputs"]),
        unknown_inputs=tuple(raw.sections["unknown_inputs"]),
        initial=initial,
        source=source,
    )


def _constant(e: Expr, element: str, line: int, fail: _Fail) -> float:
    """Value of a constant expression (no symbols, no time)."""
    if symbols(e) or any(isinstance(n, Call) and n.op == "time" for n in walk(e)):
        raise fail(line, f"the value of '{element}' must be a constant expression", element)
    if any(isinstance(n, FunCall) for n in walk(e)):
        raise fail(line, f"the value of '{element}' calls an unknown function", element)
    v = evaluate(e, {}) if not isinstance(e, Num) else e.value
    if not math.isfinite(v):
        raise fail(line, f"the value of '{element}' is {v}, not a finite number", element)
    return v


def read_ode_text(path: str | os.PathLike[str]) -> OdeModel:
    """Read an ODE text file (UTF-8); errors name the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read ODE text file: {e}", source=str(p)) from None
    return parse_ode_text(text, source=str(p))
