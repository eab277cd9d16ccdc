"""The ``binding`` demo: which data, from which scale, pin down receptor-binding parameters.

Receptor-ligand binding ``dC/dt = kon L (Rtot - C) - koff C`` is observed three ways (PEtab
problems shipped in ``data/petab/binding/``, measurements generated from the closed-form
solutions with Gaussian noise by ``make_data.py``):

1. ``binding_kinetic.yaml``, dataset ``equilibrium``: bound receptor at equilibrium for several
   ligand levels, ``Rtot L / (L + koff/kon)``.  Only ``K_D = koff/kon`` and ``Rtot`` can be
   found; ``kon`` and ``koff`` may grow together.  Dataset ``kinetic`` adds time courses of
   ``C``, whose relaxation rate ``kon L + koff`` separates them.
2. ``binding_cross_scale.yaml``, dataset ``cell``: a cell-scale readout ``y1 = s C`` (reporter
   with an unknown scale ``s``): ``Rtot`` and ``s`` enter only as ``s Rtot``.  Dataset
   ``molecular``: an assay of the receptor total ``y2 = Rtot``, which resolves the product.

For every dataset alone and for all datasets of a problem combined the demo reports the
structural labels (exact rank test and SIAN, :mod:`scalebridge.infer.structural`), the Fisher
information's rank, condition number and unseen combinations, Cramer-Rao and profile-likelihood
95% intervals, and the measurements that would restore identifiability
(:func:`scalebridge.infer.practical.practical_identifiability`).  Figures: one profile panel
set and one FIM spectrum per scope; ``summary.md`` holds the tables, all computed by the run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..demo import DemoReport

PROBLEMS = (
    ("binding_kinetic.yaml", "equilibrium vs kinetic data (one molecular scale)"),
    ("binding_cross_scale.yaml", "cell-scale readout vs an added molecular-scale assay"),
)


def run_binding(out: Path) -> DemoReport:
    """Run the demo into ``out`` (see the module docstring)."""
    from .._io import atomic_write_text
    from ..demo import DemoReport, data_file
    from ..infer.petab_problem import load_petab
    from ..infer.practical import practical_identifiability

    t0 = time.perf_counter()
    written: list[Path] = []
    values: dict[str, float] = {}
    parts = [
        "# Which data pin down receptor binding: equilibrium, kinetic, cell and molecular scale\n",
        "Every number below is computed by this run (scalebridge demo binding).\n",
    ]
    for fname, title in PROBLEMS:
        stem = fname.removesuffix(".yaml")
        with data_file(f"petab/binding/{fname}") as path:
            pb = load_petab(path)
            rep = practical_identifiability(pb, workers=1, progress=False)
        sub = out / stem
        written.extend(Path(p) for p in rep.plot(sub))
        parts.append(f"## {stem}: {title}\n")
        parts.append("```\n" + rep.format() + "\n```\n")
        for name, scope in rep.scopes.items():
            values[f"{stem}.{name}.fim_rank"] = float(scope.fim.rank)
            for p in scope.fim.parameter_ids:
                ci = scope.profile_ci(p)
                if ci is not None:
                    values[f"{stem}.{name}.{p}.profile_lower"] = ci[0]
                    values[f"{stem}.{name}.{p}.profile_upper"] = ci[1]
    parts.append(f"Run time {time.perf_counter() - t0:.1f} s.\n")
    summary = out / "summary.md"
    atomic_write_text(summary, "\n".join(parts))
    written.append(summary)
    return DemoReport("binding", out, tuple(written), values)
