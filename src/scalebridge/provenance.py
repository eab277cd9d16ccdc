"""Provenance: the versions of the software that produced a result.

Versions are read from installed package metadata (:mod:`importlib.metadata`), not by importing
the packages.  Reading metadata costs about 50 ms, which a fresh process would pay on its first
result, so the versions are also cached on disk (:func:`scalebridge.cache.cache_dir`), keyed by
the interpreter, its ``sys.prefix`` and the modification times of the directories packages are
installed in: installing or removing a package changes those times and so invalidates the cache.
Within a process they are computed once.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import site
import sys

from .cache import cache_dir, write_json_atomic

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


def _install_key() -> str:
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    stamps = []
    for d in dirs:
        try:
            stamps.append(f"{d}:{os.stat(d).st_mtime_ns}")
        except OSError:
            continue
    return "|".join([sys.executable, sys.prefix, platform.python_version(), *stamps])


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    key = _install_key()
    folder = cache_dir()
    path = folder / "versions.json" if folder else None
    if path is not None:
        try:
            cached = json.loads(path.read_text())
            if cached.get("key") == key:
                return tuple((str(a), str(b)) for a, b in cached["versions"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    found = _read_versions()
    if path is not None:
        write_json_atomic(path, {"key": key, "versions": found})
    return tuple(found)


def _read_versions() -> list[tuple[str, str]]:
    from importlib import metadata  # imported here: it costs ~20 ms and the cache avoids it

    found = [("python", platform.python_version())]
    for name in _DISTRIBUTIONS:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return found


def package_versions() -> dict[str, str]:
    """Versions of Python and of scalebridge and its scientific dependencies that are installed.

    Keys are distribution names (``"python"``, ``"scalebridge"``, ``"numpy"``, ``"scipy"``,
    ``"numba"``, ``"sympy"``, ``"xarray"``, ``"pandas"``, ``"python-libsbml"``, ``"antimony"``);
    packages that are not installed are left out.  Computed once per process; each call returns
    a fresh dict, so callers may modify it.
    """
    return dict(_versions())
