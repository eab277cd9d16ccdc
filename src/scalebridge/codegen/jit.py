"""The one decorator for compiled kernels, and a cache that stays consistent across modules.

Every compiled function in scalebridge is declared with :func:`kernel` (``@kernel`` or
``@kernel(**numba_options)``): numba ``njit`` with ``cache=True``, ``error_model="numpy"`` and
``nogil=True``, compiled once per installation and cached on disk.

Why a custom cache locator: numba checks a cached function only against the source file it is
defined in, but a cached caller (the integrator in ``wellmixed/bdf.py``) contains compiled copies
of its callees from other files (``codegen/vm.py``).  After an upgrade or an edit of a callee's
file, numba would load the caller with the *old* callee inlined -- silently wrong numbers.  The
locator below gives every kernel the same freshness stamp: a hash of the contents of all package
files that declare kernels, so a change to any of them invalidates every kernel cache.  Caches go
to ``__pycache__`` next to the sources when writable, else to ``$NUMBA_CACHE_DIR`` when set, else
to :func:`scalebridge.cache.cache_dir`.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from numba import njit
from numba.core import caching, config

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MARKER = "@kernel"
DEFAULT_OPTIONS: dict[str, Any] = {"cache": True, "error_model": "numpy", "nogil": True}


@functools.cache
def kernel_sources_stamp() -> str:
    """SHA-256 over the package files that declare kernels (path and content)."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        text = path.read_bytes()
        if MARKER.encode() in text:
            h.update(str(path.relative_to(PACKAGE_DIR)).encode())
            h.update(text)
    return h.hexdigest()


def _in_package(py_file: str) -> bool:
    try:
        Path(py_file).resolve().relative_to(PACKAGE_DIR)
    except ValueError:
        return False
    return True


class KernelCacheLocator(caching._CacheLocator):
    """Cache locator for scalebridge's kernels (see the module docstring)."""

    def __init__(self, py_func: Any, py_file: str, path: str):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = path

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self) -> str:
        return kernel_sources_stamp()

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> KernelCacheLocator | None:
        if not _in_package(py_file):
            return None
        candidates = []
        numba_dir = getattr(config, "CACHE_DIR", "")
        if numba_dir:
            candidates.append(os.path.join(numba_dir, cls.get_suitable_cache_subpath(py_file)))
        else:
            candidates.append(os.path.join(os.path.dirname(py_file), "__pycache__"))
            from ..cache import cache_dir

            folder = cache_dir()
            if folder is not None:
                candidates.append(str(folder / "kernels" / cls.get_suitable_cache_subpath(py_file)))
        for path in candidates:
            self = cls(py_func, py_file, path)
            try:
                self.ensure_cache_path()
            except OSError:
                continue
            return self
        return None


def _install_locator() -> None:
    # The class is ``CacheImpl`` in numba >= 0.61 and ``_CacheImpl`` before.
    impl: Any = vars(caching).get("CacheImpl") or vars(caching)["_CacheImpl"]
    classes = impl._locator_classes
    if KernelCacheLocator not in classes:
        classes.insert(0, KernelCacheLocator)


_install_locator()


F = TypeVar("F", bound=Callable[..., Any])


@overload
def kernel(fn: F) -> F: ...
@overload
def kernel(fn: None = None, **options: Any) -> Callable[[F], F]: ...


def kernel(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``@kernel`` or ``@kernel(**numba_options)``: a cached numba kernel (module docstring).

    Typed as the function it wraps, so call sites are checked like ordinary calls.
    """
    opts = {**DEFAULT_OPTIONS, **options}
    if fn is None:
        return njit(**opts)
    return njit(**opts)(fn)
