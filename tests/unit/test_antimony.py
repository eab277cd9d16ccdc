"""Antimony reading and writing (scalebridge.model.antimony).

References: the Antimony language (reaction arrows, rate laws after ';', `var`/`const`,
`=` initial values, `:=` assignment rules, `'` rate rules) and the SBML test-suite models.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scalebridge.errors import ModelError, UnsupportedFeatureError
from scalebridge.model.antimony import from_antimony, read_antimony, to_antimony
from scalebridge.model.expr import Expr, Sym, expand_functions, substitute
from scalebridge.model.network import ReactionNetwork, Species, SpeciesRef
from scalebridge.model.parse import parse_expr
from scalebridge.model.sbml import read_sbml

SEMANTIC = Path(__file__).resolve().parents[1] / "data" / "sbml-semantic"

GENE_EXPRESSION = """
// Two-stage model of gene expression (mRNA M, protein P)
model gene_expression
  compartment cell = 1e-15;
  species M in cell, P in cell;
  M = 0; P = 5;
  transcription: => M; k_m;
  mrna_decay: M => ; g_m*M;
  translation: => P; k_p*M;
  protein_decay: P => ; g_p*P;
  dimerisation: 2 P -> D; k_d*P^2 - k_u*D;
  species D in cell;
  D = 0;
  k_m = 10; g_m = 1; k_p = 5; g_p = 0.1; k_d = 1e-3; k_u = 0.5;
  total_P := P + 2*D;
end
"""


def test_gene_expression_model_loads_as_written():
    net = from_antimony(GENE_EXPRESSION, source="gene.ant")
    assert net.id == "gene_expression" and net.source == "gene.ant"
    assert net.compartments[0].id == "cell" and net.compartments[0].size == 1e-15
    assert set(net.species_ids) == {"M", "P", "D"}
    # Antimony '=' on a species sets its initial concentration.
    assert {s.id: s.initial_concentration for s in net.species} == {"M": 0, "P": 5, "D": 0}
    assert all(s.compartment == "cell" for s in net.species)
    assert {p.id: p.value for p in net.parameters} == {
        "k_m": 10, "g_m": 1, "k_p": 5, "g_p": 0.1, "k_d": 1e-3, "k_u": 0.5, "total_P": None,
    }  # fmt: skip
    r = net.reaction_map
    assert r["transcription"].reactants == () and r["transcription"].products == (SpeciesRef("M"),)
    assert r["mrna_decay"].reactants == (SpeciesRef("M"),) and r["mrna_decay"].products == ()
    assert r["translation"].modifiers == ("M",)  # in the rate law, not a reactant
    assert r["dimerisation"].reactants == (SpeciesRef("P", 2.0),)
    assert r["dimerisation"].products == (SpeciesRef("D", 1.0),)
    # '=>' is irreversible, '->' reversible.
    assert [x.reversible for x in net.reactions] == [False, False, False, False, True]
    rates = {x.id: x.rate for x in net.reactions}
    assert rates == {
        "transcription": parse_expr("k_m"),
        "mrna_decay": parse_expr("g_m*M"),
        "translation": parse_expr("k_p*M"),
        "protein_decay": parse_expr("g_p*P"),
        "dimerisation": parse_expr("k_d*P^2 - k_u*D"),
    }
    (rule,) = net.assignment_rules
    assert rule.variable == "total_P" and rule.math == parse_expr("P + 2*D")
    assert not net.parameter_map["total_P"].constant


def test_read_antimony_file(tmp_path):
    path = tmp_path / "gene.ant"
    path.write_text(GENE_EXPRESSION)
    net = read_antimony(path)
    assert net.source == str(path)
    assert net == from_antimony(GENE_EXPRESSION)
    with pytest.raises(ModelError, match=r"missing\.ant"):
        read_antimony(tmp_path / "missing.ant")


def test_syntax_error_reports_antimony_message_and_source():
    with pytest.raises(ModelError) as ei:
        from_antimony("model m\n  J0: -> S; k*\nend\n", source="bad.ant")
    msg = str(ei.value)
    assert msg.startswith("bad.ant: invalid Antimony") and "line" in msg


def test_errors_from_the_sbml_reader_name_the_source():
    # Antimony accepts delay(); the SBML reader refuses the delay csymbol.
    with pytest.raises(UnsupportedFeatureError, match=r"t\.ant: .*delay.*'J0'"):
        from_antimony("model m\n  J0: -> S; k*delay(S, 1)\n  S = 1; k = 1\nend\n", source="t.ant")
    # libAntimony's own checks come first, with its message.
    with pytest.raises(ModelError, match=r"u\.ant: invalid Antimony: .*undefined_fn"):
        from_antimony(
            "model m\n  J0: -> S; k*undefined_fn(S)\n  S = 1; k = 1\nend\n", source="u.ant"
        )


def test_code_in_antimony_text_is_rejected_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    for law in (
        f"__import__('os').system('touch {marker}')",
        f'__import__("os").system("touch {marker}")',
        "__import__(os)",
    ):
        text = f"model m\n  J0: -> S; {law}\n  S = 0\nend\n"
        with pytest.raises(ModelError) as ei:
            from_antimony(text, source="evil.ant")
        assert "evil.ant" in str(ei.value)
        assert not marker.exists()


def test_the_last_load_wins():
    # libAntimony keeps global state; every call starts afresh.
    a = from_antimony("model a\n  x = 1\nend\n")
    b = from_antimony("model b\n  y = 2\nend\n")
    assert [p.id for p in a.parameters] == ["x"] and [p.id for p in b.parameters] == ["y"]


def test_to_antimony_writes_reactions_and_values():
    net = from_antimony(GENE_EXPRESSION)
    text = to_antimony(net)
    assert "model *gene_expression()" in text
    assert "translation:  => P; k_p*M;" in text
    assert "total_P := P + 2*D;" in text
    # libAntimony lists parameters set by rules first: same content, another order.
    assert _simulation_content(from_antimony(text)) == _simulation_content(net)


# Semantic-suite models whose Antimony round trip is exact: events with delays, priorities and
# persistence, rate rules, rateOf, avogadro, assignment rules on stoichiometries, conversion
# factors, negative stoichiometry, L3V2 MathML (quotient, implies, max, rem, min).
EXACT = [
    "01106", "01198", "01229", "01259", "01272", "01274", "01275", "01278", "01280", "01281",
    "01295", "01323", "01333", "01432", "01455", "01526", "01653", "01677", "01729", "01755",
    "01808",
]  # fmt: skip


def _semantic(case: str) -> ReactionNetwork:
    return read_sbml(sorted((SEMANTIC / case).glob("*.xml"))[-1])


@pytest.mark.parametrize("case", EXACT)
def test_round_trip_through_antimony_is_exact(case):
    net = _semantic(case)
    assert from_antimony(to_antimony(net)) == net


def _simulation_content(net: ReactionNetwork, rename: dict[str, str] | None = None) -> dict:
    """What a simulation depends on, with user functions inlined and ids renamed.

    Left out: names, units, notes and the model id; values that an assignment rule overrides
    (a parameter's value, a species reference's declared stoichiometry); and whether a species'
    initial value is given as an amount or a concentration (both are reduced to the amount).
    """
    rename = rename or {}
    subs = {old: Sym(new) for old, new in rename.items()}
    fns = net.functions_table

    def m(e: Expr | None) -> Expr | None:
        return None if e is None else substitute(expand_functions(e, fns), subs)

    def n(name: str) -> str:
        return rename.get(name, name)

    ruled = set(net.assignment_rule_map)
    sizes = {c.id: c.size for c in net.compartments}

    def amount(s: Species) -> float | None:
        size = sizes[s.compartment]
        if s.initial_amount is not None or s.initial_concentration is None or size is None:
            return s.initial_amount if s.initial_amount is not None else s.initial_concentration
        return s.initial_concentration * size

    def refs(xs: tuple[SpeciesRef, ...]) -> list:
        return [
            (n(x.species), None if x.id in ruled else x.stoichiometry, x.id and n(x.id)) for x in xs
        ]

    return {
        "compartments": {
            n(c.id): (c.size, c.spatial_dimensions, c.constant) for c in net.compartments
        },
        "species": {
            n(s.id): (
                n(s.compartment),
                amount(s),
                s.has_only_substance_units,
                s.boundary_condition,
                s.constant,
                s.conversion_factor,
            )
            for s in net.species
        },
        "parameters": {
            n(p.id): (None if p.id in ruled else p.value, p.constant) for p in net.parameters
        },
        "reactions": {
            n(r.id): (
                refs(r.reactants),
                refs(r.products),
                sorted(n(x) for x in r.modifiers),
                m(r.rate),
                [(p.id, p.value) for p in r.local_parameters],
                r.reversible,
            )
            for r in net.reactions
        },
        "assignment_rules": {n(r.variable): m(r.math) for r in net.assignment_rules},
        "rate_rules": {n(r.variable): m(r.math) for r in net.rate_rules},
        "initial_assignments": {n(a.symbol): m(a.math) for a in net.initial_assignments},
        "events": [
            (
                m(e.trigger),
                [(n(a.variable), m(a.math)) for a in e.assignments],
                m(e.delay),
                m(e.priority),
                e.initial_value,
                e.persistent,
                e.use_values_from_trigger_time,
            )
            for e in net.events
        ],
        "conversion_factor": net.conversion_factor,
    }


# Where libAntimony changes the model, the simulation content must survive.  Why each differs:
CHANGED = {
    # 'compartment' is an Antimony keyword, renamed 'compartment_'; names equal to ids are
    # dropped; the zero initial amount of S2 comes back as a zero concentration; units differ.
    "00001": {"compartment": "compartment_"},
    # An assignment rule sets the stoichiometry of 'Xref'; Antimony writes the rule's value
    # as the declared stoichiometry.
    "00971": {},
    # A rule without math is dropped on reading; Antimony then marks the reference constant.
    "01465": {},
    # Parameters defined by assignment rules lose their (overridden) declared values.
    "01291": {},
    # libAntimony inlines the calls of function definitions and drops the definitions.
    "01486": {},
}


@pytest.mark.parametrize("case", sorted(CHANGED))
def test_round_trip_through_antimony_keeps_the_simulation_content(case):
    net = _semantic(case)
    back = from_antimony(to_antimony(net))
    assert back != net  # otherwise the case belongs in EXACT
    assert _simulation_content(back) == _simulation_content(net, CHANGED[case])


def test_simulation_content_sees_a_changed_rate():
    # The comparison above is not vacuous: a changed constant in a rate law is caught.
    net = from_antimony(GENE_EXPRESSION)
    changed = from_antimony(GENE_EXPRESSION.replace("g_p*P;", "g_p*P*1.5;"))
    assert _simulation_content(changed) != _simulation_content(net)
