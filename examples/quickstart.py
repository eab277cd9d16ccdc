"""Quick start: load an SBML model, simulate it, save and plot the result.

Run from the repository root:  python examples/quickstart.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import scalebridge as sb

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # An SBML Test Suite model: S1 -> S2 at rate k1*S1*C (case 00001).
    net = sb.load(ROOT / "tests/data/sbml-semantic/00001/00001-sbml-l3v2.xml")
    res = sb.simulate(net, "ode", t_end=5, n_points=51, rtol=1e-8, atol=1e-12)
    print(res.data)
    print({k: res.stats[k] for k in ("steps", "rhs_evaluations", "wall_time_s")})
    res.to_csv(out / "quickstart.csv")
    res.to_netcdf(out / "quickstart.nc")
    res.plot(out / "quickstart.png")

    # The same kind of model written in Antimony, with a parameter changed for this run only.
    decay = sb.from_antimony(
        """
        model decay
          species A = 10
          J: A -> ; k*A
          k = 0.3
        end
        """
    )
    fast = sb.simulate(decay, "ode", t_end=10, n_points=11, params={"k": 0.5}, vars=["A", "J"])
    print(fast.data["A"].values)

    # A steady state, with its stability.
    ss = sb.steady_state(sb.load(ROOT / "src/scalebridge/data/gene_feedback.ant"))
    print(ss.values, "stable" if ss.stable else "unstable")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
