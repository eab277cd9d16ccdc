"""The kernel cache: one freshness stamp over every file that declares kernels."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalebridge.codegen import jit, vm
from scalebridge.wellmixed import bdf


def test_every_kernel_uses_the_package_locator() -> None:
    for fn in (vm.run, vm.rhs, vm.first_crossing, bdf.solve.__globals__["_integrate"]):
        locator = fn._cache._impl.locator
        assert isinstance(locator, jit.KernelCacheLocator), fn
        assert locator.get_source_stamp() == jit.kernel_sources_stamp()


def test_stamp_changes_with_any_kernel_file_but_not_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.py").write_text("@kernel\ndef f(x):\n    return x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("@kernel\ndef g(x):\n    return 2 * x\n")
    (tmp_path / "plain.py").write_text("def h():\n    return 1\n")
    monkeypatch.setattr(jit, "PACKAGE_DIR", tmp_path)

    def stamp() -> str:
        jit.kernel_sources_stamp.cache_clear()
        return jit.kernel_sources_stamp()

    try:
        first = stamp()
        (tmp_path / "plain.py").write_text("def h():\n    return 2\n")
        assert stamp() == first  # no kernels there
        (tmp_path / "sub" / "b.py").write_text("@kernel\ndef g(x):\n    return 3 * x\n")
        changed = stamp()
        assert changed != first  # a callee's file changed: every kernel is stale
    finally:
        jit.kernel_sources_stamp.cache_clear()


def test_files_outside_the_package_are_left_to_numba(tmp_path: Path) -> None:
    def f(x: float) -> float:
        return x

    assert jit.KernelCacheLocator.from_function(f, str(tmp_path / "user_code.py")) is None
