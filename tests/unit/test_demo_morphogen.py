"""The ``morphogen`` demo (scalebridge.scenarios.morphogen), checked against mathematics.

Expected numbers are computed here from ``data/morphogen.yaml`` read with ``yaml.safe_load``
and the receptor model's closed forms (V_max = k_int R_T, K_m = (k_off + k_int)/k_on,
t_molecular = 1/(k_off + k_int), t_capture = 1/(rho k_on R_T), t_cell = K_m/(rho V_max),
t_diffusion = L^2/D_eff), and D_eff from the cell problem solved here on the same unit cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml

from scalebridge.demo import DemoReport, data_file
from scalebridge.scenarios.morphogen import run_morphogen
from scalebridge.space.homogenize import hashin_shtrikman_bounds, homogenize, inclusion_array


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    return run_morphogen(tmp_path_factory.mktemp("morphogen"))


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    with data_file("morphogen.yaml") as p:
        data: dict[str, Any] = yaml.safe_load(p.read_text())
    return data


def test_files(demo: DemoReport) -> None:
    d = demo.directory
    names = {str(p.relative_to(d)) for p in demo.files}
    expected = {
        "morphogen.yaml", "pipeline.json", "molecular_network.xml", "reduced_network.xml",
        "microstructure.nc", "gradient.nc", "formation.nc", "molecular.png",
        "microstructure.png", "gradient.png", "formation.png", "timescales.png", "summary.md",
        "resolved/fields.nc", "resolved/steady.nc", "resolved/L.png", "resolved/C.png",
        "resolved/scenario_used.yaml", "resolved/summary.md",
    }  # fmt: skip
    assert names == expected
    for p in demo.files:
        assert p.is_file() and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert demo.name == "morphogen"


def test_stages_against_closed_forms(demo: DemoReport, spec: dict[str, Any]) -> None:
    p = spec["parameters"]
    v = demo.values
    V = p["k_int"] * p["R_T"]
    K = (p["k_off"] + p["k_int"]) / p["k_on"]
    assert v["V_max"] == pytest.approx(V, rel=1e-12)
    assert v["K_m"] == pytest.approx(K, rel=1e-12)
    hom = spec["species"]["L"]["diffusivity"]["homogenize"]
    arr = inclusion_array(hom["resolution"], hom["volume_fraction"], hom["D_matrix"],
                          hom["D_inclusion"])  # fmt: skip
    D_eff = homogenize(arr).tensor[0, 0]
    assert v["D_eff"] == pytest.approx(D_eff, rel=1e-12)
    f_incl = float(np.mean(arr == hom["D_inclusion"]))
    lo, hi = hashin_shtrikman_bounds(hom["D_inclusion"], hom["D_matrix"], f_incl)
    assert lo < v["D_eff"] < hi
    rho = p["rho"]
    assert v["t_molecular"] == pytest.approx(1 / (p["k_off"] + p["k_int"]), rel=1e-12)
    assert v["t_capture"] == pytest.approx(1 / (rho * p["k_on"] * p["R_T"]), rel=1e-12)
    assert v["t_cell"] == pytest.approx(K / (rho * V), rel=1e-12)
    L = spec["grid"]["lengths"]
    assert v["t_diffusion"] == pytest.approx(L**2 / D_eff, rel=1e-12)
    assert v["separated"] == 1.0
    assert v["ratio_cell_molecular"] >= 10 and v["ratio_tissue_cell"] >= 10


def test_hierarchical_against_resolved(demo: DemoReport) -> None:
    v = demo.values
    # exact at the steady state (receptors on their manifold), to round-off
    assert v["steady_difference"] < 1e-10
    assert v["occupancy_difference"] < 1e-10
    # while forming: small, and within the QSSA's O(t_molecular/t_capture)
    assert 0 < v["formation_error_max"] < v["t_molecular"] / v["t_capture"]
    # steady state: the uptake equals the influx at the source
    assert v["mass_balance"] < 1e-10
    # single cells relax onto the manifold: after 8 t_molecular, within e^-8
    assert v["cell_relaxation_error"] < np.exp(-8.0)
    d = demo.directory
    with (
        xr.open_dataset(d / "gradient.nc", engine="h5netcdf") as a,
        xr.open_dataset(d / "resolved" / "steady.nc", engine="h5netcdf") as b,
    ):
        np.testing.assert_allclose(a["L"].values, b["L"].values, rtol=1e-10)


def test_summary_has_the_numbers_of_the_run(demo: DemoReport) -> None:
    text = (demo.directory / "summary.md").read_text()
    v = demo.values
    for key in ("V_max", "K_m", "t_molecular", "t_capture", "t_cell", "t_diffusion",
                "decay_length"):  # fmt: skip
        assert f"{v[key]:.4g}" in text, key
    assert f"{v['D_eff']:.6g}" in text
    assert f"{v['steady_difference']:.1e}" in text
    assert "the scales are separated" in text
    assert "scalebridge run morphogen.yaml" in text


def test_resolved_run_is_the_yaml_scenario(demo: DemoReport) -> None:
    used = yaml.safe_load((demo.directory / "resolved" / "scenario_used.yaml").read_text())
    assert used["name"] == "morphogen"
    assert set(used["species"]) == {"L", "C"}
    with xr.open_dataset(demo.directory / "resolved" / "fields.nc", engine="h5netcdf") as ds:
        assert list(ds["time"].values) == used["outputs"]["times"]
        # receptors never exceed R_T
        assert float(ds["C"].max()) <= used["parameters"]["R_T"]


def test_demo_directory_is_self_contained(demo: DemoReport) -> None:
    assert all(Path(p).is_relative_to(demo.directory) for p in demo.files)
