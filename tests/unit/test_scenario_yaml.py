"""YAML tissue scenarios (scalebridge.space.scenario): validation, round trip, runs.

Runs are checked against mathematics:

* periodic diffusion with decay from c = sin(2 pi x): the cell-centred second difference has
  sin(2 pi x_i) as an exact eigenvector with eigenvalue -(4 D/h^2) sin^2(pi h), so the
  Crank-Nicolson solution is exactly sin(2 pi x_i) g^n with
  g = (1 + dt lambda/2)/(1 - dt lambda/2), lambda = -(4 D/h^2) sin^2(pi h) - k (to round-off);
* the steady state of a source at x = 0 with linear uptake, c0 cosh((L - x)/l)/cosh(L/l),
  l = sqrt(D/k), to the finite-volume accuracy 0.3 (h/l)^2.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml

from scalebridge.errors import InputError, ModelError, OptionError, SolverError
from scalebridge.space.scenario import (
    dump_scenario,
    load_scenario,
    run_scenario,
    scenario_from_dict,
)

BASE: dict[str, Any] = {
    "name": "decay",
    "grid": {"lengths": 1.0, "cells": 100},
    "species": {
        "c": {
            "diffusivity": 0.01,
            "initial": 0,
            "boundary": {"x-": {"dirichlet": 1.0}, "x+": "no-flux"},
        }
    },
    "parameters": {"k": 1.0},
    "reactions": {"c": "-k*c"},
    "duration": 1.0,
    "solver": {"method": "crank-nicolson", "dt": 0.01},
    "outputs": {"times": 3, "steady_state": True},
}


def _write(tmp_path: Path, data: Any, name: str = "scenario.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


def _with(path: str, value: Any) -> dict[str, Any]:
    """BASE with the value at the dotted ``path`` set (``None`` deletes it)."""
    d = copy.deepcopy(BASE)
    keys = path.split(".")
    node = d
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return d


# --------------------------------------------------------------------------- validation
BAD = [
    ("species.c.diffusivity", -1, "species.c.diffusivity: must be a number >= 0 (0 for an "
     "immobile species), got -1"),
    ("durration", 5, "durration: unknown key 'durration' (allowed: name, description, grid"),
    ("species.c.colour", "red", "species.c.colour: unknown key 'colour'"),
    ("species.c.boundary.q-", "no-flux", "species.c.boundary.q-: no side 'q-' on a 1-D grid"),
    ("species.c.boundary.x-", {"dirichlet": "hot"}, "species.c.boundary.x-: "),
    ("species.c.boundary.x-", {"robin": {"a": 1}}, "species.c.boundary.x-: robin condition "
     "needs 'b'"),
    ("species.c.boundary.x-", "periodic", "species.c.boundary: side 'x-' is periodic but "
     "side 'x+' is neumann: periodic conditions come in pairs"),
    ("reactions.c", "-k*c +", "reactions.c: cannot parse '-k*c +' at column 7"),
    ("reactions.c", "-kk*c", "reactions.c: unknown symbol 'kk' in the reaction term"),
    ("reactions.c", "foo(c)", "reactions.c: unknown function 'foo'"),
    ("reactions.d", "1", "reactions.d: no species 'd' (species: c)"),
    ("duration", 0, "duration: must be a positive number, got 0"),
    ("duration", "long", "duration: must be a number, got 'long'"),
    ("solver.method", "rk4", "solver.method: unknown reaction-diffusion method 'rk4'"),
    ("solver.dt", None, "solver: missing required key 'dt' (the largest time step) for "
     "method crank-nicolson"),
    ("solver", {"method": "imex", "dt": 0.1, "options": {"scheme": "rk"}},
     "solver.options.scheme: imex: scheme must be one of"),
    ("outputs.fields", ["d"], "outputs.fields[0]: no species 'd' (species: c)"),
    ("outputs.times", [0, 0.5, 0.3], "outputs.times: must be strictly increasing"),
    ("outputs.times", [0, 2.0], "outputs.times: 2 is after the duration 1"),
    ("outputs.file", "../x.nc", "outputs.file: must be a file name ending in .nc"),
    ("outputs.steady_state", "yes", "outputs.steady_state: must be true or false, got 'yes'"),
    ("grid.cells", 2.5, "grid.cells: must be an integer, got 2.5"),
    ("grid.lengths", [1.0, 2.0], "grid.lengths: needs 1 entries (one per axis of cells: [100])"),
    ("grid", None, "(top level): missing required key 'grid'"),
    ("grid.mask", "x > 2", "grid.mask: selects no cell of the grid"),
    ("parameters.x", 1.0, "parameters.x: 'x' is reserved"),
    ("parameters.q", 1.0, "parameters.q: parameter 'q' is used by no reaction term"),
    ("parameters.k", [1, 2], "parameters.k: must be a number or an expression in x"),
    ("species.c.initial", [1, 2], "species.c.initial: must be a number or an expression"),
    ("species.c.initial", "sin(y)", "species.c.initial: unknown symbol 'y' in the initial value"),
    ("species.c.diffusivity", {"homogenize": {"microstructure": "inclusions",
     "volume_fraction": 0.9, "D_matrix": 1, "D_inclusion": 0.1}},
     "species.c.diffusivity.homogenize.volume_fraction: must be in (0, 0.7854)"),
    ("species.c.diffusivity", {"homogenize": {"microstructure": "foam"}},
     "species.c.diffusivity.homogenize.microstructure: unknown microstructure 'foam'"),
    ("species.c.diffusivity", {"homogenize": {"microstructure": "checkerboard", "D1": 1}},
     "species.c.diffusivity.homogenize: microstructure 'checkerboard' needs 'D2'"),
    ("species.c.diffusivity", {"scale": 2}, "species.c.diffusivity.scale: unknown key 'scale' "
     "(allowed: homogenize)"),
    ("network", "missing.ant", "network: "),
    ("species.c.diffusivity", "0.01*(1 + t)", "species.c.diffusivity: the diffusivity cannot "
     "depend on the time"),
    ("species.t", {"diffusivity": 1.0}, "species.t: 't' is reserved"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "message"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)]
)
def test_validation_errors_name_the_file_and_key(
    tmp_path: Path, path: str, value: Any, message: str
) -> None:
    p = _write(tmp_path, _with(path, value))
    with pytest.raises(ModelError) as exc:
        load_scenario(p)
    text = str(exc.value)
    assert text.startswith(f"{p}: "), text
    assert message in text, text


def test_error_gives_the_line(tmp_path: Path) -> None:
    text = """name: lines
grid:
  lengths: 1.0
  cells: 10
species:
  A:
    diffusivity: -1
duration: 1
solver: {dt: 0.1}
"""
    p = _write(tmp_path, text)
    with pytest.raises(ModelError) as exc:
        load_scenario(p)
    assert str(exc.value) == (
        f"{p}: species.A.diffusivity: must be a number >= 0 (0 for an immobile species), "
        "got -1 (line 7)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grid: {lengths: 1, cells: [10\n", "line 2, column 1: not valid YAML"),
        ("grid: {lengths: 1, cells: 10}\nspecies: {A: 1}\nspecies: {B: 1}\n",
         "species: duplicate key 'species' (lines 2 and 3)"),
        ("- a\n- b\n", "(top level): must be a mapping (key: value), got a list"),
        ("", "the scenario is empty"),
        ("grid: !!python/object:os.system {}\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_yaml_level_errors(tmp_path: Path, text: str, message: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ModelError, match=None) as exc:
        load_scenario(p)
    assert message in str(exc.value), str(exc.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_scenario(tmp_path / "nope.yaml")


def test_numbers_written_as_text_are_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads 1e-2 as text; scenarios take it as a number
    p = _write(tmp_path, yaml.safe_dump(BASE).replace("0.01", "1e-2"))
    sc = load_scenario(p)
    assert sc.model.diffusivities[0] == 0.01
    assert sc.spec["solver"]["dt"] == 0.01


# --------------------------------------------------------------------------- round trip
def test_round_trip(tmp_path: Path) -> None:
    spec = _with("species.c.diffusivity", "0.01*(1 + x)")
    spec["description"] = "variable diffusivity"
    spec["outputs"]["fields"] = ["c"]
    p = _write(tmp_path, spec)
    a = load_scenario(p)
    dumped = tmp_path / "again.yaml"
    dump_scenario(a, dumped)
    b = load_scenario(dumped)
    assert a.to_dict() == b.to_dict()
    assert b.description == "variable diffusivity"
    # from plain data too
    assert scenario_from_dict(a.to_dict(), base_dir=tmp_path).to_dict() == a.to_dict()
    ra = run_scenario(p, tmp_path / "a", progress=False)
    rb = run_scenario(dumped, tmp_path / "b", progress=False)
    assert ra.result is not None and rb.result is not None
    np.testing.assert_array_equal(ra.result.data["c"].values, rb.result.data["c"].values)


# --------------------------------------------------------------------------- runs
def test_periodic_decay_matches_the_exact_discrete_solution(tmp_path: Path) -> None:
    D, k, n, dt, T = 0.02, 0.5, 64, 0.01, 1.0
    spec = {
        "name": "wave",
        "grid": {"lengths": 1.0, "cells": n},
        "species": {"c": {"diffusivity": D, "initial": "sin(2*pi*x)"}},
        "parameters": {"k": k},
        "reactions": {"c": "-k*c"},
        "boundary": {"x": "periodic"},
        "duration": T,
        "solver": {"method": "crank-nicolson", "dt": dt},
        "outputs": {"times": [0.0, 0.5, 1.0], "figures": False},
    }
    rep = run_scenario(_write(tmp_path, spec), tmp_path / "out", progress=False)
    with xr.open_dataset(tmp_path / "out" / "fields.nc", engine="h5netcdf") as ds:
        c = ds["c"].values
        t = ds["time"].values
        x = ds["x"].values
    h = 1.0 / n
    lam = -(4 * D / h**2) * math.sin(math.pi * h) ** 2 - k
    g = (1 + dt * lam / 2) / (1 - dt * lam / 2)
    for i, ti in enumerate(t):
        exact = np.sin(2 * np.pi * x) * g ** round(ti / dt)
        np.testing.assert_allclose(c[i], exact, rtol=0, atol=1e-12)
    assert rep.values["steps"] == 100
    assert {p.name for p in rep.files} == {"fields.nc", "scenario_used.yaml", "summary.md"}


def test_steady_source_and_uptake_match_cosh(tmp_path: Path) -> None:
    D, k, n = 0.01, 1.0, 400  # l = 0.1, h/l = 0.025: error ~ 0.3 (h/l)^2 = 2e-4
    spec = _with("grid.cells", n)
    spec["parameters"]["k"] = k
    rep = run_scenario(_write(tmp_path, spec), tmp_path / "out", progress=False)
    with xr.open_dataset(tmp_path / "out" / "steady.nc", engine="h5netcdf") as ds:
        c = ds["c"].values
        x = ds["x"].values
    lam = math.sqrt(D / k)
    exact = np.cosh((1 - x) / lam) / np.cosh(1 / lam)
    assert float(np.max(np.abs(c - exact) / exact)) < 4e-4
    assert rep.values["steady_residual"] < 1e-10
    png = (tmp_path / "out" / "c.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "crank-nicolson" in summary and f"{rep.values['c_max_final']:.6g}" in summary


def test_homogenized_diffusivity_from_layers(tmp_path: Path) -> None:
    """A 1-D tissue across layers of 1 and 0.1 (3 and 5 pixels): D = harmonic mean, exactly."""
    layers = {"homogenize": {"microstructure": "layers", "values": [1.0, 0.1],
                             "thickness": [3, 5]}}  # fmt: skip
    sc = load_scenario(_write(tmp_path, _with("species.c.diffusivity", layers)))
    assert sc.model.diffusivities[0] == pytest.approx(1 / ((3 / 1.0 + 5 / 0.1) / 8), rel=1e-10)
    assert sc.homogenization["c"].shape == (8, 2)
    assert sc.to_dict()["species"]["c"]["diffusivity"] == layers


def test_network_file_equals_the_same_expression(tmp_path: Path) -> None:
    (tmp_path / "uptake.ant").write_text(
        "model uptake\n  compartment tissue = 1\n  species c in tissue = 0\n"
        "  J: c -> ; V*c/(K + c)\n  V = 0.5\n  K = 0.2\nend\n"
    )
    net = _with("reactions", None)
    net["parameters"] = {"V": 0.5}  # overrides the network's value (the same)
    net["network"] = "uptake.ant"
    expr = _with("reactions.c", "-V*c/(K + c)")
    expr["parameters"] = {"V": 0.5, "K": 0.2}
    a = load_scenario(_write(tmp_path, net, "net.yaml")).run()[1]
    b = load_scenario(_write(tmp_path, expr, "expr.yaml")).run()[1]
    assert a is not None and b is not None
    np.testing.assert_allclose(a.values("c"), b.values("c"), rtol=1e-12)
    # the copy written elsewhere still finds the network file
    rep = run_scenario(tmp_path / "net.yaml", tmp_path / "deep" / "out", progress=False)
    again = load_scenario(tmp_path / "deep" / "out" / "scenario_used.yaml")
    assert again.spec["network"] == "../../uptake.ant"
    assert again.network_path == rep.scenario.network_path


def test_masked_2d_scenario_writes_maps(tmp_path: Path) -> None:
    spec = {
        "name": "disc",
        "grid": {"lengths": [1.0, 1.0], "cells": [24, 24], "mask": "(x-0.5)^2 + (y-0.5)^2 < 0.16"},
        "species": {"c": {"diffusivity": 0.05, "boundary": {"*": {"dirichlet": 1.0}}}},
        "reactions": {"c": "-c"},
        "outputs": {"steady_state": True},
    }
    rep = run_scenario(_write(tmp_path, spec), tmp_path / "out", progress=False)
    assert rep.result is None and rep.steady is not None
    with xr.open_dataset(tmp_path / "out" / "steady.nc", engine="h5netcdf") as ds:
        c = ds["c"].values
    assert np.isnan(c[0, 0]) and np.isfinite(c[12, 12])
    # the box boundary does not touch the disc: no source, so c = 0 (uptake only)
    assert np.nanmax(np.abs(c)) < 1e-12
    assert (tmp_path / "out" / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_failed_run_leaves_existing_files_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "fields.nc").write_bytes(b"user data")
    # explicit Euler of c' = c^2 from c = 1 blows up at t = 1
    spec = _with("reactions.c", "c^2")
    spec["parameters"] = {}
    spec["species"]["c"] = {"diffusivity": 0.0, "initial": 1.0}
    spec["duration"] = 5.0
    spec["solver"] = {"method": "explicit", "dt": 0.05}
    spec["outputs"] = {"times": 2}
    with pytest.raises(SolverError, match="not finite"):
        run_scenario(_write(tmp_path, spec), out, progress=False)
    assert (out / "fields.nc").read_bytes() == b"user data"
    assert sorted(p.name for p in out.iterdir()) == ["fields.nc"]


def test_outputs_never_replace_the_scenario_file(tmp_path: Path) -> None:
    p = _write(tmp_path, BASE, "summary.md")
    with pytest.raises(OptionError, match="would replace the scenario file"):
        run_scenario(p, tmp_path, progress=False)
    assert yaml.safe_load(p.read_text()) == BASE


def test_ready_morphogen_scenario_loads() -> None:
    from scalebridge.demo import data_file

    with data_file("morphogen.yaml") as path:
        sc = load_scenario(path)
    assert sc.model.species == ("L", "C")
    assert sc.homogenization["L"].shape == (64, 64)
    assert sc.times is not None and sc.times[-1] == sc.duration == 1440.0


# ---- the `scalebridge run` command ----------------------------------------------------------
def test_cli_run_writes_fields_and_exits_2_naming_the_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scalebridge.cli import cli
    from scalebridge.demo import data_file

    with data_file("morphogen.yaml") as path:
        text = path.read_text()
    good = tmp_path / "m.yaml"
    good.write_text(text)
    res = CliRunner().invoke(cli, ["run", str(good), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert any(p.suffix == ".nc" for p in (tmp_path / "out").iterdir())
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\nno_such_key: 1\n")
    res = CliRunner().invoke(cli, ["run", str(bad), "--out", str(tmp_path / "out2")])
    assert res.exit_code == 2
    assert "no_such_key" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())
