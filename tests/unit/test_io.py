"""Atomic file writing (scalebridge._io) and provenance."""

from __future__ import annotations

import platform
from importlib import metadata

import pytest

from scalebridge._io import atomic_path, atomic_write_text
from scalebridge.errors import OptionError
from scalebridge.provenance import package_versions


class Boom(Exception):
    pass


def test_success_replaces_existing_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        # The temporary file is hidden, in the same directory, keeps the suffix, and is fresh.
        assert tmp.parent == target.parent
        assert tmp.name.startswith(".")
        assert tmp.suffix == ".txt"
        assert not tmp.exists()
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible until the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_success_creates_new_file(tmp_path):
    target = tmp_path / "fresh.bin"
    with atomic_path(str(target)) as tmp:
        tmp.write_bytes(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["fresh.bin"]


def test_exception_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old,content\n")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise Boom
    assert target.read_text() == "old,content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_exception_before_anything_written_creates_nothing(tmp_path):
    target = tmp_path / "never.txt"
    with pytest.raises(Boom), atomic_path(target):
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_unique(tmp_path):
    target = tmp_path / "x.nc"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    # The outer block finishes last, so its content wins; no temporary is left either way.
    assert target.read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["x.nc"]


def test_missing_directory_is_an_option_error_naming_the_path(tmp_path):
    target = tmp_path / "no_such_dir" / "out.csv"
    with pytest.raises(OptionError, match="no_such_dir"), atomic_path(target):
        pass
    with pytest.raises(OptionError, match=r"out\.csv"):
        atomic_write_text(target, "x")
    assert not (tmp_path / "no_such_dir").exists()


def test_directory_as_target_is_an_option_error(tmp_path):
    with pytest.raises(OptionError, match="directory"):
        atomic_write_text(tmp_path, "x")


def test_atomic_write_text_is_byte_exact(tmp_path):
    target = tmp_path / "t.txt"
    text = "a,b\nµ,\u00b1\r\nlast"
    atomic_write_text(target, text)
    assert target.read_bytes() == text.encode("utf-8")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"


def test_package_versions():
    versions = package_versions()
    assert versions["python"] == platform.python_version()
    for name in ("scalebridge", "numpy", "xarray", "pandas"):
        assert versions[name] == metadata.version(name)
    # A fresh dict each call: modifying one does not change the cached values.
    versions["numpy"] = "modified"
    assert package_versions()["numpy"] == metadata.version("numpy")
