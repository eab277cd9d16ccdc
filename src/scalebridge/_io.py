"""Atomic file writing.

Every file scalebridge writes goes through :func:`atomic_path`: the writer fills a hidden temporary
file in the destination's directory, which is flushed to disk and then renamed onto the destination
with :func:`os.replace`.  A rename within one directory (one file system) is atomic on POSIX and
Windows, so a reader sees either the old file or the complete new one, never a partial write; a
failure while writing leaves any existing file untouched and removes the temporary file.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OptionError

__all__ = ["atomic_path", "atomic_write_text", "json_safe"]


def _temporary_name(target: Path) -> Path:
    # Hidden, unique, and ending in the target's suffix: writers such as matplotlib's savefig
    # infer the format from it.
    return target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp{target.suffix}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened this way on Windows.
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path`` atomically.

    The temporary file is ``.<name>.<random hex>.tmp<suffix>`` in the directory of ``path`` (so
    the rename never crosses file systems, and the suffix still tells writers the format).  The
    body of the ``with`` block must create it.  On normal exit the file is fsynced and moved onto
    ``path`` with :func:`os.replace`; if the block raises, the temporary file is deleted, any file
    already at ``path`` is left as it was, and the exception propagates.

    Raises :class:`~scalebridge.errors.OptionError` naming the path when its directory does not
    exist or ``path`` is a directory.
    """
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        raise OptionError(f"cannot write '{target}': directory '{parent}' does not exist")
    if target.is_dir():
        raise OptionError(f"cannot write '{target}': it is a directory")
    tmp = _temporary_name(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); newlines are written as
    given, without platform translation."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline="") as fh:
        fh.write(text)


def json_safe(obj: Any) -> Any:
    """``obj`` as plain JSON data for reports: NumPy scalars and arrays become Python numbers and
    lists, tuples become lists, keys become strings, and non-finite floats become ``None`` (JSON
    has no NaN or infinity); anything else unknown becomes its ``str``."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # NumPy arrays and scalars
        return json_safe(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    return str(obj)
