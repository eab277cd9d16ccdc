"""scalebridge's on-disk cache folder (small derived data that is cheap to lose).

The folder is ``$SCALEBRIDGE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/scalebridge``, else
``~/.cache/scalebridge``.  Compiled kernels are cached by numba next to the package's sources, not
here.  Everything written here is written atomically and may be deleted at any time; a cache that
cannot be created or written is simply not used.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_dir() -> Path | None:
    """The cache folder, created if needed; None when it cannot be created."""
    env = os.environ.get("SCALEBRIDGE_CACHE_DIR")
    if env:
        folder = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = Path(base) / "scalebridge"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def write_json_atomic(path: Path, data: Any) -> bool:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename; False on failure."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True
