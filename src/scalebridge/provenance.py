"""Provenance: the versions of the software that produced a result.

Versions are read from installed package metadata (:mod:`importlib.metadata`), not by importing
the packages, and cached for the life of the process, so asking for them costs nothing after the
first call (about a millisecond).
"""

from __future__ import annotations

import functools
import platform
from importlib import metadata

__all__ = ["package_versions"]

# Distribution names (as installed), in report order.  sympy is included beside the brief's list
# because symbolic steps (Jacobians, LNA, QSSA) shape results as much as the numeric libraries.
_DISTRIBUTIONS = (
    "scalebridge",
    "numpy",
    "scipy",
    "numba",
    "sympy",
    "xarray",
    "pandas",
    "python-libsbml",
    "antimony",
)


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    found = [("python", platform.python_version())]
    for name in _DISTRIBUTIONS:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def package_versions() -> dict[str, str]:
    """Versions of Python and of scalebridge and its scientific dependencies that are installed.

    Keys are distribution names (``"python"``, ``"scalebridge"``, ``"numpy"``, ``"scipy"``,
    ``"numba"``, ``"sympy"``, ``"xarray"``, ``"pandas"``, ``"python-libsbml"``, ``"antimony"``);
    packages that are not installed are left out.  Computed once per process; each call returns
    a fresh dict, so callers may modify it.
    """
    return dict(_versions())
