"""Antimony reading and writing, through SBML.

Antimony text is translated to SBML by the ``antimony`` library (libAntimony) and read with
:func:`scalebridge.model.sbml.read_sbml_string`, so an Antimony model means exactly what its
SBML translation means, and the SBML reader's checks and refusals apply.  When the text defines
several modules, the main module (the last one, or the text outside any module) is read, with
its submodels flattened by libAntimony.  :func:`to_antimony` goes the other way: SBML written by
:func:`scalebridge.model.sbml.write_sbml_string` is loaded into libAntimony, which prints it.

libAntimony keeps its loaded models in global state, so every call here holds one lock and
clears the previous loads first.

A round trip ``net -> Antimony -> net`` keeps compartments, species, parameters, reactions,
rules, initial assignments and events, with numbers rounded to 15 significant digits by
libSBML's writer inside libAntimony.  Beyond that, libAntimony's translation (not this
module) changes, without changing what a simulation computes: ids that are Antimony keywords
get an underscore (``compartment`` becomes ``compartment_``); names equal to ids are added or
dropped, units rewritten, notes dropped and elements reordered; local parameters become
global parameters ``<reaction>_<id>``; calls of function definitions are inlined; initial
assignments of numbers become values, and values that assignment rules override are dropped;
operators without arguments (``plus()``, ``and()``) are simplified; the ``constant`` flag of
boundary species and of species references that no math sets may change.  It does change:
0-dimensional compartments become 3-dimensional, and an initial assignment of NaN becomes the
value NaN (which the reader refuses).  Of the 167 SBML test-suite models vendored in
tests/data, 57 come back equal and 65 more with the same simulation content.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import antimony

from ..errors import ModelError
from .network import ReactionNetwork
from .sbml import read_sbml_string, write_sbml_string

__all__ = ["from_antimony", "read_antimony", "to_antimony"]

_LOCK = threading.Lock()


def _last_error(default: str) -> str:
    text = " ".join((antimony.getLastError() or "").split())
    return text or default


def from_antimony(text: str, source: str | None = None) -> ReactionNetwork:
    """The network of Antimony ``text``; ``source`` names it in errors and in the result.

    Raises :class:`ModelError` with libAntimony's message when the text does not parse.
    """
    with _LOCK:
        antimony.clearPreviousLoads()
        if antimony.loadAntimonyString(text) < 0:
            raise ModelError(f"invalid Antimony: {_last_error('no message')}", source=source)
        main = antimony.getMainModuleName()
        sbml = antimony.getSBMLString(main) if main else None
        if not sbml:
            raise ModelError(
                f"Antimony text defines no model: {_last_error('no main module')}", source=source
            )
    return read_sbml_string(sbml, source=source)


def read_antimony(path: str | os.PathLike[str]) -> ReactionNetwork:
    """Read an Antimony file (see :func:`from_antimony`)."""
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise ModelError("no such Antimony file" if not p.exists() else "not a file", source=source)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read Antimony file: {e}", source=source) from None
    return from_antimony(text, source=source)


def to_antimony(net: ReactionNetwork) -> str:
    """Antimony text of ``net`` (through SBML Level 3 Version 2 and libAntimony)."""
    sbml = write_sbml_string(net)
    with _LOCK:
        antimony.clearPreviousLoads()
        if antimony.loadSBMLString(sbml) < 0:
            raise ModelError(
                f"libAntimony could not load the SBML of model '{net.id}': "
                f"{_last_error('no message')}",
                source=net.source,
            )
        text = antimony.getAntimonyString(antimony.getMainModuleName())
    if not text:
        raise ModelError(f"libAntimony wrote no Antimony for model '{net.id}'", source=net.source)
    return str(text)
