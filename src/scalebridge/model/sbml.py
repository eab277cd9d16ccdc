"""SBML reading and writing (core of Levels 1-3; written as Level 3 Version 2).

Reading
-------
libSBML parses the document.  Errors of severity error or fatal (malformed XML, schema and
syntax errors) raise :class:`~scalebridge.errors.ModelError` naming the file, the line and
libSBML's message.  Level 1 and 2 documents are converted by libSBML to Level 3 Version 1, with
the same simulation semantics: kinetic-law parameters become local parameters, default
stoichiometries and the other Level 2 defaults become explicit attributes, and
``stoichiometryMath`` becomes a species-reference id set by an assignment rule.  A Level 1
``formula`` that libSBML's Level 1 parser cannot read raises :class:`ModelError` (libSBML
itself would drop it silently).  Level 3 Version 1 and 2 are read directly.

Every core construct maps onto the dataclasses of :mod:`scalebridge.model.network`; math is
converted node by node by :mod:`scalebridge.model.mathml`.  Kept: compartments (``size`` and
``spatialDimensions`` may be unset, None), species (``initialAmount`` or
``initialConcentration`` exactly as set), parameters (``value`` may be unset, None), reactions
(species references with stoichiometry, id and ``constant``; modifiers; kinetic law and local
parameters; ``reversible``; ``compartment``), function definitions, assignment and rate rules,
initial assignments, events, the model's conversion factor, units and unit definitions, and the
model's notes as plain text (one line per paragraph, whitespace collapsed), and the ``name``
of every element that has a field for it.  Not kept, as they
carry no simulation semantics: names of unit definitions, notes of other elements, annotations,
``metaid``, ``sboTerm``, ids of modifier references, ``sbml:units`` on numbers.

Where SBML Level 3 Version 2 leaves the math of an element out, the element has no effect, as
the SBML test suite expects (cases tagged NoMathML): a rule, initial assignment or event
assignment without math is dropped; an event whose trigger has no math never fires and is
dropped; a delay or priority without math is absent (None); a kinetic law without math, like a
reaction without a kinetic law, gives ``rate=None``.  A function definition without math is
dropped (a call of it is then an undefined function).

A species reference whose ``stoichiometry`` is unset keeps None when an initial assignment, a
rule or an event assignment sets it through the reference's id; otherwise its value is undefined
(SBML Level 3) and :class:`ModelError` names the reaction and the species.

Unsupported constructs raise :class:`~scalebridge.errors.UnsupportedFeatureError` naming the
construct and the element.  The checks on the document are all in
:func:`_refuse_unsupported_packages` and :func:`_refuse_unsupported`, those on math in
:func:`scalebridge.model.mathml._refuse_unsupported`:

* any SBML Level 3 package declared ``required="true"`` (comp, multi, spatial, distrib, ...).
  Packages declared ``required="false"`` (layout, render, groups, fbc, ...) do not change the
  mathematical meaning of the core model by the definition of that attribute; they are
  accepted and their content is not kept;
* algebraic rules;
* reactions with ``fast="true"`` (Level 2 and Level 3 Version 1);
* constraints.  A constraint does not change a trajectory, but it asks the simulator to check a
  condition and report its violation; accepting it would silently drop that check.  None of
  the vendored test-suite cases uses one.

Writing
-------
:func:`write_sbml_string` produces SBML Level 3 Version 2 from the dataclasses with MathML from
the expression trees.  The XML is built here rather than with libSBML's writer, which rounds
doubles to 15 significant digits: every number is written with the digits of :func:`repr`, so
reading, writing and reading again gives an equal :class:`ReactionNetwork`.  The result passes
libSBML's consistency checks.  Refused with :class:`ModelError`: a model id that is not an SBML
identifier, a subnormal number in an attribute (libSBML cannot read it back; in math it is
fine), and (:class:`UnsupportedFeatureError`) a reaction with ``fast=True``, which Level 3
Version 2 cannot express.
"""

from __future__ import annotations

import math
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import libsbml

from .._io import atomic_write_text
from ..errors import ModelError, UnsupportedFeatureError
from .expr import Expr, format_number
from .mathml import ast_to_expr, ast_to_lambda, expr_to_element
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

__all__ = ["read_sbml", "read_sbml_string", "write_sbml", "write_sbml_string"]

SBML_L3V2_NS = "http://www.sbml.org/sbml/level3/version2/core"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_SEVERE = (libsbml.LIBSBML_SEV_ERROR, libsbml.LIBSBML_SEV_FATAL)
_MAX_REPORTED_ERRORS = 5
_SID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# =============================================================================================
# Reading
# =============================================================================================
def read_sbml(path: str | os.PathLike[str]) -> ReactionNetwork:
    """Read an SBML file (any level and version; see the module docstring)."""
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise ModelError("no such SBML file" if not p.exists() else "not a file", source=source)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read SBML file: {e}", source=source) from None
    return read_sbml_string(text, source=source)


def read_sbml_string(text: str, source: str | None = None) -> ReactionNetwork:
    """Read SBML from a string; ``source`` names it in errors and in the result."""
    doc = libsbml.readSBMLFromString(text)
    _refuse_unsupported_packages(doc, source)
    _raise_on_errors(doc, source, "invalid SBML")
    if doc.getModel() is None:
        raise ModelError("SBML document has no model", source=source)
    if doc.getLevel() == 1:
        _check_level1_formulas(doc.getModel(), source)
    if doc.getLevel() < 3:
        _upgrade(doc, source)
    _refuse_unsupported(doc, source)
    return _Reader(source).network(doc.getModel())


def _raise_on_errors(doc: Any, source: str | None, what: str) -> None:
    errors = [
        doc.getError(i)
        for i in range(doc.getNumErrors())
        if doc.getError(i).getSeverity() in _SEVERE
    ]
    if not errors:
        return
    lines = [f"line {e.getLine()}: {' '.join(e.getMessage().split())}" for e in errors]
    more = len(lines) - _MAX_REPORTED_ERRORS
    text = "; ".join(lines[:_MAX_REPORTED_ERRORS]) + (f"; and {more} more" if more > 0 else "")
    raise ModelError(f"{what}: {text}", source=source)


def _check_level1_formulas(model: Any, source: str | None) -> None:
    """Level 1 math is text in ``formula`` attributes, which libSBML parses only when asked
    (and drops silently when it cannot): refuse what its Level 1 parser rejects."""
    holders = [
        (r.getId(), r.getKineticLaw()) for r in model.getListOfReactions() if r.isSetKineticLaw()
    ]
    holders += [(rule.getVariable(), rule) for rule in model.getListOfRules()]
    for element, holder in holders:
        if holder.isSetFormula() and libsbml.parseFormula(holder.getFormula()) is None:
            raise ModelError(
                f"cannot parse Level 1 formula {holder.getFormula()!r} in '{element}'",
                element=element,
                source=source,
            )


def _upgrade(doc: Any, source: str | None) -> None:
    """Convert a Level 1/2 document to Level 3 Version 1 in place (same semantics)."""
    level = doc.getLevel()
    ok = doc.setLevelAndVersion(3, 1, False)
    _raise_on_errors(doc, source, f"cannot convert SBML Level {level} to Level 3")
    if not ok:
        raise ModelError("libSBML could not convert the document to SBML Level 3", source=source)


# ---------------------------------------------------------------------------------------------
# Unsupported constructs: all document-level checks are here.
# ---------------------------------------------------------------------------------------------
def _refuse_unsupported_packages(doc: Any, source: str | None) -> None:
    """Any SBML package declared required (its constructs change the core's meaning)."""
    ns = doc.getNamespaces()
    if ns is None or doc.getLevel() < 3:
        return  # packages exist only in Level 3
    for i in range(ns.getNumNamespaces()):
        uri = ns.getURI(i)
        if libsbml.SBMLNamespaces.isSBMLNamespace(uri):
            continue  # core, not a package
        if doc.isSetPackageRequired(uri) and doc.getPackageRequired(uri):
            name = ns.getPrefix(i) or uri
            raise UnsupportedFeatureError(
                f"SBML package '{name}' (required=\"true\")",
                source=source,
                detail="only SBML core is supported; flatten the model first (e.g. comp)",
            )


def _refuse_unsupported(doc: Any, source: str | None) -> None:
    """Algebraic rules, fast reactions and constraints (see the module docstring)."""
    model = doc.getModel()
    for i in range(model.getNumRules()):
        rule = model.getRule(i)
        if rule.isAlgebraic():
            element = _opt_id(rule) or f"algebraic rule #{i + 1}"
            raise UnsupportedFeatureError("algebraic rule", element=element, source=source)
    for i in range(model.getNumReactions()):
        r = model.getReaction(i)
        if r.isSetFast() and r.getFast():
            raise UnsupportedFeatureError(
                'fast reaction (fast="true")', element=r.getId(), source=source
            )
    for i in range(model.getNumConstraints()):
        c = model.getConstraint(i)
        raise UnsupportedFeatureError(
            "constraint", element=_opt_id(c) or f"constraint #{i + 1}", source=source
        )


def _opt_id(el: Any) -> str | None:
    """The SBML ``id`` attribute of an element whose getId() may mean something else (rules)."""
    if hasattr(el, "isSetIdAttribute") and el.isSetIdAttribute():
        return str(el.getIdAttribute())
    return None


def _opt_str(is_set: bool, value: str) -> str | None:
    return value if is_set and value else None


# ---------------------------------------------------------------------------------------------
# Element readers
# ---------------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, source: str | None):
        self.source = source

    def math(self, node: Any, element: str) -> Expr:
        return ast_to_expr(node, element=element, source=self.source)

    def network(self, model: Any) -> ReactionNetwork:
        assignment_rules, rate_rules = self.rules(model)
        reactions = tuple(self.reaction(r) for r in model.getListOfReactions())
        initial_assignments = self.initial_assignments(model)
        events = self.events(model)
        self.check_stoichiometries(
            reactions, assignment_rules, rate_rules, initial_assignments, events
        )
        return ReactionNetwork(
            id=model.getId() or "model",
            name=model.getName(),
            compartments=tuple(self.compartment(c) for c in model.getListOfCompartments()),
            species=tuple(self.species(s) for s in model.getListOfSpecies()),
            parameters=tuple(self.parameter(p) for p in model.getListOfParameters()),
            reactions=reactions,
            functions=self.functions(model),
            assignment_rules=assignment_rules,
            rate_rules=rate_rules,
            initial_assignments=initial_assignments,
            events=events,
            conversion_factor=_opt_str(model.isSetConversionFactor(), model.getConversionFactor()),
            units=self.units(model),
            notes=_notes_text(model),
            source=self.source,
        )

    # -- declarations ----------------------------------------------------------------------
    def compartment(self, c: Any) -> Compartment:
        return Compartment(
            id=c.getId(),
            size=c.getSize() if c.isSetSize() else None,
            spatial_dimensions=(
                c.getSpatialDimensionsAsDouble() if c.isSetSpatialDimensions() else None
            ),
            constant=c.getConstant(),
            name=c.getName(),
            units=_opt_str(c.isSetUnits(), c.getUnits()),
        )

    def species(self, s: Any) -> Species:
        return Species(
            id=s.getId(),
            compartment=s.getCompartment(),
            initial_amount=s.getInitialAmount() if s.isSetInitialAmount() else None,
            initial_concentration=(
                s.getInitialConcentration() if s.isSetInitialConcentration() else None
            ),
            has_only_substance_units=s.getHasOnlySubstanceUnits(),
            boundary_condition=s.getBoundaryCondition(),
            constant=s.getConstant(),
            conversion_factor=_opt_str(s.isSetConversionFactor(), s.getConversionFactor()),
            name=s.getName(),
            substance_units=_opt_str(s.isSetSubstanceUnits(), s.getSubstanceUnits()),
        )

    def parameter(self, p: Any, *, local: bool = False) -> Parameter:
        return Parameter(
            id=p.getId(),
            value=p.getValue() if p.isSetValue() else None,
            constant=True if local else p.getConstant(),
            name=p.getName(),
            units=_opt_str(p.isSetUnits(), p.getUnits()),
        )

    def units(self, model: Any) -> Units:
        definitions = []
        for ud in model.getListOfUnitDefinitions():
            parts = tuple(
                (
                    libsbml.UnitKind_toString(u.getKind()),
                    u.getExponentAsDouble(),
                    u.getScale(),
                    u.getMultiplier(),
                )
                for u in ud.getListOfUnits()
            )
            definitions.append((ud.getId(), parts))
        return Units(
            substance=_opt_str(model.isSetSubstanceUnits(), model.getSubstanceUnits()),
            time=_opt_str(model.isSetTimeUnits(), model.getTimeUnits()),
            volume=_opt_str(model.isSetVolumeUnits(), model.getVolumeUnits()),
            area=_opt_str(model.isSetAreaUnits(), model.getAreaUnits()),
            length=_opt_str(model.isSetLengthUnits(), model.getLengthUnits()),
            extent=_opt_str(model.isSetExtentUnits(), model.getExtentUnits()),
            definitions=tuple(definitions),
        )

    def functions(self, model: Any) -> tuple[FunctionDefinition, ...]:
        out = []
        for f in model.getListOfFunctionDefinitions():
            if not f.isSetMath():
                continue  # no math: no function (module docstring)
            args, body = ast_to_lambda(f.getMath(), element=f.getId(), source=self.source)
            out.append(FunctionDefinition(id=f.getId(), args=args, body=body, name=f.getName()))
        return tuple(out)

    # -- reactions -------------------------------------------------------------------------
    def reaction(self, r: Any) -> Reaction:
        rid = r.getId()
        rate = None
        local: tuple[Parameter, ...] = ()
        if r.isSetKineticLaw():
            kl = r.getKineticLaw()
            if kl.isSetMath():
                rate = self.math(kl.getMath(), rid)
            local = tuple(
                self.parameter(kl.getLocalParameter(i), local=True)
                for i in range(kl.getNumLocalParameters())
            )
        return Reaction(
            id=rid,
            reactants=tuple(self.species_ref(sr) for sr in r.getListOfReactants()),
            products=tuple(self.species_ref(sr) for sr in r.getListOfProducts()),
            modifiers=tuple(str(m.getSpecies()) for m in r.getListOfModifiers()),
            rate=rate,
            local_parameters=local,
            reversible=r.getReversible(),
            fast=False,
            compartment=_opt_str(r.isSetCompartment(), r.getCompartment()),
            name=r.getName(),
        )

    def species_ref(self, sr: Any) -> SpeciesRef:
        return SpeciesRef(
            species=sr.getSpecies(),
            stoichiometry=sr.getStoichiometry() if sr.isSetStoichiometry() else None,
            id=_opt_str(sr.isSetId(), sr.getId()),
            constant=sr.getConstant(),
            name=sr.getName(),
        )

    def check_stoichiometries(
        self,
        reactions: Iterable[Reaction],
        assignment_rules: Iterable[AssignmentRule],
        rate_rules: Iterable[RateRule],
        initial_assignments: Iterable[InitialAssignment],
        events: Iterable[Event],
    ) -> None:
        """An unset stoichiometry must be set by math through the reference's id."""
        assigned = {r.variable for r in assignment_rules} | {r.variable for r in rate_rules}
        assigned |= {ia.symbol for ia in initial_assignments}
        assigned |= {ea.variable for ev in events for ea in ev.assignments}
        for r in reactions:
            for ref in r.species_refs:
                if ref.stoichiometry is None and (ref.id is None or ref.id not in assigned):
                    raise ModelError(
                        f"reaction '{r.id}' leaves the stoichiometry of species "
                        f"'{ref.species}' undefined (no stoichiometry attribute, and no "
                        "initial assignment, rule or event sets it)",
                        element=r.id,
                        source=self.source,
                    )

    # -- math elements ---------------------------------------------------------------------
    def rules(self, model: Any) -> tuple[tuple[AssignmentRule, ...], tuple[RateRule, ...]]:
        assignment: list[AssignmentRule] = []
        rate: list[RateRule] = []
        for rule in model.getListOfRules():
            if not rule.isSetMath():
                continue  # no math: no effect (module docstring)
            variable = rule.getVariable()
            rid = _opt_id(rule)
            math_ = self.math(rule.getMath(), rid or variable)
            if rule.isAssignment():
                assignment.append(AssignmentRule(variable=variable, math=math_, id=rid))
            else:
                rate.append(RateRule(variable=variable, math=math_, id=rid))
        return tuple(assignment), tuple(rate)

    def initial_assignments(self, model: Any) -> tuple[InitialAssignment, ...]:
        out = []
        for ia in model.getListOfInitialAssignments():
            if not ia.isSetMath():
                continue
            iid = _opt_id(ia)
            symbol = ia.getSymbol()
            out.append(
                InitialAssignment(
                    symbol=symbol, math=self.math(ia.getMath(), iid or symbol), id=iid
                )
            )
        return tuple(out)

    def events(self, model: Any) -> tuple[Event, ...]:
        out = []
        for i, ev in enumerate(model.getListOfEvents()):
            event = self.event(ev, ev.getId() or f"event #{i + 1}")
            if event is not None:
                out.append(event)
        return tuple(out)

    def event(self, ev: Any, element: str) -> Event | None:
        trigger = ev.getTrigger() if ev.isSetTrigger() else None
        if trigger is None or not trigger.isSetMath():
            return None  # never fires (module docstring)
        return Event(
            id=ev.getId(),
            trigger=self.math(trigger.getMath(), element),
            assignments=tuple(
                EventAssignment(ea.getVariable(), self.math(ea.getMath(), element))
                for ea in ev.getListOfEventAssignments()
                if ea.isSetMath()
            ),
            delay=self.optional_math(ev.getDelay() if ev.isSetDelay() else None, element),
            priority=self.optional_math(ev.getPriority() if ev.isSetPriority() else None, element),
            initial_value=trigger.getInitialValue(),
            persistent=trigger.getPersistent(),
            use_values_from_trigger_time=ev.getUseValuesFromTriggerTime(),
            name=ev.getName(),
        )

    def optional_math(self, holder: Any, element: str) -> Expr | None:
        if holder is None or not holder.isSetMath():
            return None
        return self.math(holder.getMath(), element)


# ---------------------------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------------------------
_BLOCK_TAGS = frozenset(
    (
        "address", "blockquote", "body", "br", "dd", "div", "dl", "dt", "h1", "h2", "h3", "h4",
        "h5", "h6", "hr", "li", "ol", "p", "pre", "table", "td", "th", "tr", "ul",
    )
)  # fmt: skip


def _notes_text(model: Any) -> str:
    """The model's notes as plain text: one line per block element (and per line of a
    ``pre``), whitespace collapsed, empty lines dropped."""
    if not model.isSetNotes():
        return ""
    parts: list[str] = []
    _collect_text(model.getNotes(), parts, in_pre=False)
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


def _collect_text(node: Any, parts: list[str], *, in_pre: bool) -> None:
    if node.isText():
        text = node.getCharacters()
        parts.append(text if in_pre else " ".join(text.split("\n")))
        return
    name = node.getName()
    block = name in _BLOCK_TAGS
    if block:
        parts.append("\n")
    for i in range(node.getNumChildren()):
        _collect_text(node.getChild(i), parts, in_pre=in_pre or name == "pre")
    if block:
        parts.append("\n")


# =============================================================================================
# Writing
# =============================================================================================
def write_sbml(net: ReactionNetwork, path: str | os.PathLike[str]) -> None:
    """Write ``net`` as SBML Level 3 Version 2 to ``path`` (atomically: temp file + rename)."""
    atomic_write_text(path, write_sbml_string(net))


def write_sbml_string(net: ReactionNetwork) -> str:
    """SBML Level 3 Version 2 text of ``net``."""
    if not _SID.match(net.id):
        raise ModelError(f"model id {net.id!r} is not a valid SBML identifier", element=net.id)
    root = ET.Element("sbml", {"xmlns": SBML_L3V2_NS, "level": "3", "version": "2"})
    model = _el(
        root,
        "model",
        id=net.id,
        name=net.name or None,
        substanceUnits=net.units.substance,
        timeUnits=net.units.time,
        volumeUnits=net.units.volume,
        areaUnits=net.units.area,
        lengthUnits=net.units.length,
        extentUnits=net.units.extent,
        conversionFactor=net.conversion_factor,
    )
    _write_notes(model, net.notes)
    _write_list(model, "listOfFunctionDefinitions", net.functions, _write_function)
    _write_list(model, "listOfUnitDefinitions", net.units.definitions, _write_unit_definition)
    _write_list(model, "listOfCompartments", net.compartments, _write_compartment)
    _write_list(model, "listOfSpecies", net.species, _write_species)
    _write_list(model, "listOfParameters", net.parameters, _write_parameter)
    _write_list(
        model, "listOfInitialAssignments", net.initial_assignments, _write_initial_assignment
    )
    _write_list(model, "listOfRules", (*net.assignment_rules, *net.rate_rules), _write_rule)
    _write_list(model, "listOfReactions", net.reactions, _write_reaction)
    _write_list(model, "listOfEvents", net.events, _write_event)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _fmt(v: Any, element: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float | int):
        x = float(v)
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "INF" if x > 0 else "-INF"
        if 0.0 < abs(x) < sys.float_info.min:
            # libSBML reads a subnormal attribute value as an error (strtod's ERANGE).
            raise ModelError(
                f"cannot write the subnormal number {x!r} as an SBML attribute of '{element}'",
                element=element,
            )
        return format_number(x)
    return str(v)


def _el(parent: ET.Element, tag: str, **attrs: Any) -> ET.Element:
    """A child element; attributes that are None are left out."""
    element = str(attrs.get("id") or attrs.get("variable") or attrs.get("symbol") or tag)
    values = {k: _fmt(v, element) for k, v in attrs.items() if v is not None}
    return ET.SubElement(parent, tag, values)


def _write_list(parent: ET.Element, tag: str, items: Iterable[Any], write: Any) -> None:
    items = list(items)
    if items:
        lst = ET.SubElement(parent, tag)
        for item in items:
            write(lst, item)


def _write_math(parent: ET.Element, e: Expr) -> None:
    parent.append(expr_to_element(e))


def _write_notes(model: ET.Element, notes: str) -> None:
    lines = [line for line in notes.splitlines() if line.strip()]
    if not lines:
        return
    body = ET.SubElement(ET.SubElement(model, "notes"), "body", {"xmlns": XHTML_NS})
    for line in lines:
        ET.SubElement(body, "p").text = line


def _write_function(parent: ET.Element, f: FunctionDefinition) -> None:
    el = _el(parent, "functionDefinition", id=f.id, name=f.name or None)
    el.append(expr_to_element(f.body, args=f.args))


def _write_unit_definition(
    parent: ET.Element, ud: tuple[str, tuple[tuple[str, float, int, float], ...]]
) -> None:
    uid, units = ud
    el = _el(parent, "unitDefinition", id=uid)
    if units:
        lst = ET.SubElement(el, "listOfUnits")
        for kind, exponent, scale, multiplier in units:
            _el(lst, "unit", kind=kind, exponent=exponent, scale=scale, multiplier=multiplier)


def _write_compartment(parent: ET.Element, c: Compartment) -> None:
    _el(
        parent,
        "compartment",
        id=c.id,
        name=c.name or None,
        spatialDimensions=c.spatial_dimensions,
        size=c.size,
        units=c.units,
        constant=c.constant,
    )


def _write_species(parent: ET.Element, s: Species) -> None:
    _el(
        parent,
        "species",
        id=s.id,
        name=s.name or None,
        compartment=s.compartment,
        initialAmount=s.initial_amount,
        initialConcentration=s.initial_concentration,
        substanceUnits=s.substance_units,
        hasOnlySubstanceUnits=s.has_only_substance_units,
        boundaryCondition=s.boundary_condition,
        constant=s.constant,
        conversionFactor=s.conversion_factor,
    )


def _write_parameter(parent: ET.Element, p: Parameter, tag: str = "parameter") -> None:
    constant = p.constant if tag == "parameter" else None
    _el(parent, tag, id=p.id, name=p.name or None, value=p.value, units=p.units, constant=constant)


def _write_initial_assignment(parent: ET.Element, ia: InitialAssignment) -> None:
    _write_math(_el(parent, "initialAssignment", id=ia.id, symbol=ia.symbol), ia.math)


def _write_rule(parent: ET.Element, rule: AssignmentRule | RateRule) -> None:
    tag = "assignmentRule" if isinstance(rule, AssignmentRule) else "rateRule"
    _write_math(_el(parent, tag, id=rule.id, variable=rule.variable), rule.math)


def _write_reaction(parent: ET.Element, r: Reaction) -> None:
    if r.fast:
        # Level 3 Version 2 has no fast attribute; scalebridge does not simulate fast reactions.
        raise UnsupportedFeatureError("fast reaction (fast=True)", element=r.id)
    el = _el(
        parent,
        "reaction",
        id=r.id,
        name=r.name or None,
        reversible=r.reversible,
        compartment=r.compartment,
    )
    for tag, refs in (("listOfReactants", r.reactants), ("listOfProducts", r.products)):
        _write_list(el, tag, refs, _write_species_ref)
    if r.modifiers:
        lst = ET.SubElement(el, "listOfModifiers")
        for m in r.modifiers:
            _el(lst, "modifierSpeciesReference", species=m)
    if r.rate is None and not r.local_parameters:
        return
    kl = ET.SubElement(el, "kineticLaw")
    if r.rate is not None:
        _write_math(kl, r.rate)
    if r.local_parameters:
        lst = ET.SubElement(kl, "listOfLocalParameters")
        for p in r.local_parameters:
            _write_parameter(lst, p, "localParameter")


def _write_species_ref(parent: ET.Element, ref: SpeciesRef) -> None:
    _el(
        parent,
        "speciesReference",
        id=ref.id,
        name=ref.name or None,
        species=ref.species,
        stoichiometry=ref.stoichiometry,
        constant=ref.constant,
    )


def _write_event(parent: ET.Element, ev: Event) -> None:
    el = _el(
        parent,
        "event",
        id=ev.id or None,
        name=ev.name or None,
        useValuesFromTriggerTime=ev.use_values_from_trigger_time,
    )
    trigger = _el(el, "trigger", initialValue=ev.initial_value, persistent=ev.persistent)
    _write_math(trigger, ev.trigger)
    if ev.priority is not None:
        _write_math(ET.SubElement(el, "priority"), ev.priority)
    if ev.delay is not None:
        _write_math(ET.SubElement(el, "delay"), ev.delay)
    if ev.assignments:
        lst = ET.SubElement(el, "listOfEventAssignments")
        for ea in ev.assignments:
            _write_math(_el(lst, "eventAssignment", variable=ea.variable), ea.math)
