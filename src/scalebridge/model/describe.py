"""A description of a reaction network, for ``scalebridge info`` and for programs.

:func:`describe` returns a JSON-serialisable dict (strings, numbers, booleans, None, lists and
dicts only); :func:`describe_text` renders the same content as plain text.  Math is printed with
:func:`~scalebridge.model.expr.to_infix`, which the scalebridge parser reads back.

Sections, in order: ``model`` (summary), ``compartments``, ``species``, ``parameters``,
``reactions``, ``functions``, ``assignment_rules``, ``rate_rules``, ``initial_assignments``,
``events``, ``conservation_laws`` (with ``conservation_laws_note`` saying why they are missing
when they cannot be computed), then any sections passed in ``extra``.

Extending: later analyses add sections through ``extra``, a mapping from a new section key to a
JSON-serialisable value, e.g. ``describe(net, extra={"mass_action": [...]})``.  A key may not
replace a built-in section.  The text form titles such a section from its key
(``mass_action`` -> "Mass action") and prints a list one item per line, a dict one
``key: value`` per line, and anything else on one line.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ModelError
from .conservation import conservation_laws
from .expr import Expr, format_number, to_infix
from .network import Event, Reaction, ReactionNetwork, SpeciesRef

__all__ = ["SECTIONS", "describe", "describe_text"]

SECTIONS = (
    "model",
    "compartments",
    "species",
    "parameters",
    "reactions",
    "functions",
    "assignment_rules",
    "rate_rules",
    "initial_assignments",
    "events",
    "conservation_laws",
    "conservation_laws_note",
)
NOTHING = "(nothing)"  # the empty side of a reaction, e.g. "(nothing) -> A"


def _math(e: Expr | None) -> str | None:
    return None if e is None else to_infix(e)


def _num(v: float | None) -> str:
    return "unset" if v is None else format_number(v)


def _set_by(net: ReactionNetwork, name: str) -> str | None:
    if name in net.assignment_rule_map:
        return "assignment rule"
    if name in net.rate_rule_map:
        return "rate rule"
    return None


def _ia(net: ReactionNetwork, name: str) -> str | None:
    ia = net.initial_assignment_map.get(name)
    return None if ia is None else to_infix(ia.math)


def _stoich_text(ref: SpeciesRef) -> str:
    if ref.stoichiometry is None:
        return f"({ref.id}) {ref.species}"
    if ref.stoichiometry == 1:
        return ref.species
    return f"{format_number(ref.stoichiometry)} {ref.species}"


def reaction_equation(r: Reaction) -> str:
    """``2 A + B -> C``; a stoichiometry set by math shows the reference id: ``(s1) A``."""
    lhs = " + ".join(_stoich_text(x) for x in r.reactants) or NOTHING
    rhs = " + ".join(_stoich_text(x) for x in r.products) or NOTHING
    return f"{lhs} -> {rhs}"


def _refs(refs: Iterable[SpeciesRef]) -> list[dict[str, Any]]:
    return [
        {"species": x.species, "stoichiometry": x.stoichiometry, "id": x.id, "constant": x.constant}
        for x in refs
    ]


def _event(i: int, ev: Event) -> dict[str, Any]:
    return {
        "id": ev.id or f"event #{i + 1}",
        "name": ev.name,
        "trigger": to_infix(ev.trigger),
        "delay": _math(ev.delay),
        "priority": _math(ev.priority),
        "persistent": ev.persistent,
        "initial_value": ev.initial_value,
        "use_values_from_trigger_time": ev.use_values_from_trigger_time,
        "assignments": [{"variable": a.variable, "math": to_infix(a.math)} for a in ev.assignments],
    }


def describe(net: ReactionNetwork, *, extra: Mapping[str, object] | None = None) -> dict[str, Any]:
    """A JSON-serialisable description of ``net`` (see the module docstring for the sections).

    Conservation laws are those of :func:`~scalebridge.model.conservation.conservation_laws`
    (in amounts); when they cannot be computed (non-numeric stoichiometry, variable
    conversion factors), ``conservation_laws`` is empty and ``conservation_laws_note`` says why.
    """
    u = net.units
    units = {
        k: getattr(u, k)
        for k in ("substance", "time", "volume", "area", "length", "extent")
        if getattr(u, k) is not None
    }
    out: dict[str, Any] = {
        "model": {
            "id": net.id,
            "name": net.name,
            "source": None if net.source is None else str(net.source),
            "counts": {
                "compartments": len(net.compartments),
                "species": len(net.species),
                "parameters": len(net.parameters),
                "reactions": len(net.reactions),
                "functions": len(net.functions),
                "assignment_rules": len(net.assignment_rules),
                "rate_rules": len(net.rate_rules),
                "initial_assignments": len(net.initial_assignments),
                "events": len(net.events),
            },
            "conversion_factor": net.conversion_factor,
            "units": units,
            "unit_definitions": [
                {"id": uid, "units": [list(t) for t in parts]} for uid, parts in u.definitions
            ],
        },
        "compartments": [
            {
                "id": c.id,
                "name": c.name,
                "size": c.size,
                "spatial_dimensions": c.spatial_dimensions,
                "constant": c.constant,
                "units": c.units,
                "set_by": _set_by(net, c.id),
                "initial_assignment": _ia(net, c.id),
            }
            for c in net.compartments
        ],
        "species": [
            {
                "id": s.id,
                "name": s.name,
                "compartment": s.compartment,
                "initial_amount": s.initial_amount,
                "initial_concentration": s.initial_concentration,
                "has_only_substance_units": s.has_only_substance_units,
                "boundary_condition": s.boundary_condition,
                "constant": s.constant,
                "conversion_factor": s.conversion_factor,
                "substance_units": s.substance_units,
                "set_by": _set_by(net, s.id),
                "initial_assignment": _ia(net, s.id),
            }
            for s in net.species
        ],
        "parameters": [
            {
                "id": p.id,
                "name": p.name,
                "value": p.value,
                "constant": p.constant,
                "units": p.units,
                "set_by": _set_by(net, p.id),
                "initial_assignment": _ia(net, p.id),
            }
            for p in net.parameters
        ],
        "reactions": [
            {
                "id": r.id,
                "name": r.name,
                "equation": reaction_equation(r),
                "reactants": _refs(r.reactants),
                "products": _refs(r.products),
                "modifiers": list(r.modifiers),
                "rate": _math(r.rate),
                "reversible": r.reversible,
                "fast": r.fast,
                "compartment": r.compartment,
                "local_parameters": [
                    {"id": lp.id, "name": lp.name, "value": lp.value} for lp in r.local_parameters
                ],
            }
            for r in net.reactions
        ],
        "functions": [
            {"id": f.id, "name": f.name, "args": list(f.args), "body": to_infix(f.body)}
            for f in net.functions
        ],
        "assignment_rules": [
            {"variable": a.variable, "math": to_infix(a.math), "id": a.id}
            for a in net.assignment_rules
        ],
        "rate_rules": [
            {"variable": a.variable, "math": to_infix(a.math), "id": a.id} for a in net.rate_rules
        ],
        "initial_assignments": [
            {"symbol": a.symbol, "math": to_infix(a.math), "id": a.id}
            for a in net.initial_assignments
        ],
        "events": [_event(i, ev) for i, ev in enumerate(net.events)],
    }
    try:
        laws = conservation_laws(net)
    except ModelError as e:
        out["conservation_laws"] = []
        out["conservation_laws_note"] = f"not computed: {e.args[0] if e.args else e}"
    else:
        out["conservation_laws"] = [
            {"coefficients": dict(law.coefficients), "total": law.total, "text": str(law)}
            for law in laws
        ]
        out["conservation_laws_note"] = None
    if extra:
        for key, value in extra.items():
            if key in out:
                raise ValueError(f"extra section '{key}' would replace a built-in section")
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------
def _label(d: Mapping[str, Any], key: str = "id") -> str:
    name = d.get("name")
    return f'{d[key]} "{name}"' if name else str(d[key])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 or word.endswith("s") else f"{n} {word}s"


def _flags(d: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    return [text for key, text in names.items() if d.get(key)]


def describe_text(
    net: ReactionNetwork, *, width: int = 100, extra: Mapping[str, object] | None = None
) -> str:
    """Plain-text description of ``net``, lines wrapped at ``width`` characters (long lines
    continue with a deeper indent).  Contains what :func:`describe` returns."""
    d = describe(net, extra=extra)
    lines: list[tuple[int, str]] = []  # (indent level, text)

    def add(level: int, text: str) -> None:
        lines.append((level, text))

    def section(title: str, items: list[Any]) -> bool:
        if not items:
            add(0, f"{title}: none")
            return False
        add(0, f"{title} ({len(items)})")
        return True

    m = d["model"]
    add(0, f"Model {_label(m)}")
    if m["source"]:
        add(1, f"source: {m['source']}")
    c = m["counts"]
    add(
        1,
        ", ".join(
            [
                _plural(c["compartments"], "compartment"),
                _plural(c["species"], "species"),
                _plural(c["parameters"], "parameter"),
                _plural(c["reactions"], "reaction"),
                _plural(c["functions"], "function definition"),
                _plural(c["assignment_rules"], "assignment rule"),
                _plural(c["rate_rules"], "rate rule"),
                _plural(c["initial_assignments"], "initial assignment"),
                _plural(c["events"], "event"),
            ]
        ),
    )
    if m["conversion_factor"]:
        add(1, f"conversion factor: {m['conversion_factor']}")
    if m["units"]:
        add(1, "units: " + ", ".join(f"{k} {v}" for k, v in m["units"].items()))
    if m["unit_definitions"]:
        add(1, "unit definitions: " + ", ".join(u["id"] for u in m["unit_definitions"]))

    if section("Compartments", d["compartments"]):
        for x in d["compartments"]:
            dims = x["spatial_dimensions"]
            parts = [
                f"size {_num(x['size'])}",
                "dimensions unset" if dims is None else f"{format_number(dims)}-D",
                "constant" if x["constant"] else "variable",
            ]
            parts += _origin(x)
            if x["units"]:
                parts.append(f"units {x['units']}")
            add(1, f"{_label(x)}: " + ", ".join(parts))

    if section("Species", d["species"]):
        for x in d["species"]:
            if x["initial_amount"] is not None:
                init = f"initial amount {_num(x['initial_amount'])}"
            elif x["initial_concentration"] is not None:
                init = f"initial concentration {_num(x['initial_concentration'])}"
            else:
                init = "no initial value"
            parts = [f"in {x['compartment']}", init, *_origin(x)]
            parts.append(
                "symbol is amount (hasOnlySubstanceUnits)"
                if x["has_only_substance_units"]
                else "symbol is concentration"
            )
            parts += _flags(x, {"boundary_condition": "boundary", "constant": "constant"})
            if x["conversion_factor"]:
                parts.append(f"conversion factor {x['conversion_factor']}")
            add(1, f"{_label(x)}: " + ", ".join(parts))

    if section("Parameters", d["parameters"]):
        for x in d["parameters"]:
            parts = ["constant" if x["constant"] else "variable", *_origin(x)]
            if x["units"]:
                parts.append(f"units {x['units']}")
            add(1, f"{_label(x)} = {_num(x['value'])} (" + ", ".join(parts) + ")")

    if section("Reactions", d["reactions"]):
        for x in d["reactions"]:
            rate = x["rate"] if x["rate"] is not None else "(no kinetic law)"
            flags = _flags(x, {"reversible": "reversible", "fast": "fast"})
            tail = f"  [{', '.join(flags)}]" if flags else ""
            add(1, f"{_label(x)}: {x['equation']} ; {rate}{tail}")
            if x["modifiers"]:
                add(2, "modifiers: " + ", ".join(x["modifiers"]))
            if x["local_parameters"]:
                add(
                    2,
                    "local parameters: "
                    + ", ".join(f"{p['id']} = {_num(p['value'])}" for p in x["local_parameters"]),
                )
            if x["compartment"]:
                add(2, f"compartment: {x['compartment']}")

    if section("Function definitions", d["functions"]):
        for x in d["functions"]:
            add(1, f"{x['id']}({', '.join(x['args'])}) = {x['body']}")

    if section("Assignment rules", d["assignment_rules"]):
        for x in d["assignment_rules"]:
            add(1, f"{x['variable']} = {x['math']}")

    if section("Rate rules", d["rate_rules"]):
        for x in d["rate_rules"]:
            add(1, f"d{x['variable']}/dt = {x['math']}")

    if section("Initial assignments", d["initial_assignments"]):
        for x in d["initial_assignments"]:
            add(1, f"{x['symbol']} = {x['math']}  (at the initial time)")

    if section("Events", d["events"]):
        for x in d["events"]:
            add(1, f"{_label(x)}: when {x['trigger']}")
            opts = [
                f"delay {x['delay'] if x['delay'] is not None else 'none'}",
                f"priority {x['priority'] if x['priority'] is not None else 'none'}",
                f"persistent {_bool(x['persistent'])}",
                f"initialValue {_bool(x['initial_value'])}",
                f"useValuesFromTriggerTime {_bool(x['use_values_from_trigger_time'])}",
            ]
            add(2, "; ".join(opts))
            for a in x["assignments"]:
                add(2, f"{a['variable']} = {a['math']}")

    if d["conservation_laws_note"]:
        add(0, f"Conservation laws: {d['conservation_laws_note']}")
    elif section("Conservation laws (in amounts)", d["conservation_laws"]):
        for x in d["conservation_laws"]:
            add(1, x["text"])

    for key in d:
        if key in SECTIONS:
            continue
        value = d[key]
        title = key.replace("_", " ").capitalize()
        if isinstance(value, list | tuple):
            if section(title, list(value)):
                for item in value:
                    add(1, _plain(item))
        elif isinstance(value, Mapping):
            if section(title, list(value)):
                for k, v in value.items():
                    add(1, f"{k}: {_plain(v)}")
        else:
            add(0, f"{title}: {_plain(value)}")

    out: list[str] = []
    for level, text in lines:
        if level == 0 and out:
            out.append("")
        out.append(_wrap(text, "  " * level, max(width, 20)))
    return "\n".join(out) + "\n"


_GLUE = re.compile(r"(?<=\d) (?=[A-Za-z_])|(?<=[+-]) ")  # keep "2 A" and "+ B" on one line


def _wrap(text: str, indent: str, width: int) -> str:
    if len(indent) + len(text) <= width:
        return indent + text
    glued = _GLUE.sub("\0", text)
    wrapped = textwrap.fill(
        glued,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "    ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return wrapped.replace("\0", " ")


def _origin(x: Mapping[str, Any]) -> list[str]:
    parts = []
    if x.get("set_by"):
        parts.append(f"set by {x['set_by']}")
    if x.get("initial_assignment"):
        parts.append(f"initial assignment {x['initial_assignment']}")
    return parts


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _plain(v: object) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return format_number(v) if math.isfinite(v) else str(v)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {_plain(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x) for x in v)
    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return str(v)
