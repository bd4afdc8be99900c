"""The mixed-precision run pipeline (core/runs.py) with several samplers, driven
in-process through ``core.cli.main`` (same code path as ``python -m core run``,
without an interpreter start per case) and through ``core.runs.run``."""

from __future__ import annotations

import json

import dimod
import pytest

from core.cli import main
from core.runs import run

FP32_CNN_BITS = 32 * 9930


def _run_cli(tmp_path, *extra: str) -> tuple[dict, dimod.BinaryQuadraticModel]:
    out, bqm_path = tmp_path / "r.json", tmp_path / "b.json"
    code = main(["run", "--model", "digits-cnn", "--method", "mixed-precision", "--reads", "20", "--seed", "0",
                 "--latency-repeats", "2", "--out", str(out), "--bqm", str(bqm_path), *extra])
    assert code == 0
    report = json.loads(out.read_text())
    bqm = dimod.BinaryQuadraticModel.from_serializable(json.loads(bqm_path.read_text()))
    return report, bqm


def _check_core_contract(report: dict, bqm: dimod.BinaryQuadraticModel) -> None:
    best = report["best"]
    assert report["qubo"]["num_variables"] == bqm.num_variables
    assert report["qubo"]["num_interactions"] == bqm.num_interactions
    assert bqm.energy(best["sample"]) == pytest.approx(best["energy"], abs=1e-9)
    assert best["energy"] >= report["exact"]["energy"] - 1e-9
    assert min(report["energies"]) == pytest.approx(best["energy"], abs=1e-12)
    assert best["feasible"] is True and set(best["decision"]) == {"conv1", "conv2", "fc"}
    metrics = report["metrics"]
    assert metrics["size_bits_before"] == FP32_CNN_BITS
    assert 0 < metrics["size_bits_after"] <= FP32_CNN_BITS
    assert set(report["timing"]) >= {"build_s", "embed_s", "sample_s", "evaluate_s"}


@pytest.mark.parametrize("sampler", ["exact", "tabu", "mock-qpu-pegasus"])
def test_run_with_other_samplers(tmp_path, sampler):
    report, bqm = _run_cli(tmp_path, "--sampler", sampler)
    assert report["sampler"] == sampler
    _check_core_contract(report, bqm)
    # 14 variables: exact enumeration and tabu both find the MILP optimum
    if sampler in ("exact", "tabu"):
        assert report["best"]["energy"] == pytest.approx(report["exact"]["energy"], abs=1e-9)
    if sampler == "mock-qpu-pegasus":
        assert 0.0 <= report["chain_break_fraction"] <= 1.0
        assert "chain_strength" in report
        assert report["embedding"] and set(report["embedding"]) == set(bqm.variables)
        assert report["timing"]["embed_s"] >= 0


def test_run_budget_ratio_keeps_the_size_under_budget(tmp_path):
    report, bqm = _run_cli(tmp_path, "--sampler", "sa", "--budget-ratio", "0.2")
    _check_core_contract(report, bqm)
    metrics = report["metrics"]
    assert report["budget_bits"] == pytest.approx(0.2 * FP32_CNN_BITS)
    assert metrics["size_bits_after"] <= 0.2 * metrics["size_bits_before"]
    assert metrics["compression_ratio"] >= 5.0


def test_run_tight_budget_bits_still_feasible(tmp_path):
    report, bqm = _run_cli(tmp_path, "--sampler", "sa", "--budget-bits", "30000")
    _check_core_contract(report, bqm)
    assert report["metrics"]["size_bits_after"] <= 30000


def test_run_api_is_seeded_and_leaves_the_workspace_model_alone(digits_cnn_workspace):
    ws = digits_cnn_workspace
    key = ws.cache_key()
    first, formulation = run(ws, sampler="sa", num_reads=10, seed=5, latency_repeats=2)
    again, _ = run(ws, sampler="sa", num_reads=10, seed=5, latency_repeats=2)
    assert ws.cache_key() == key  # compression works on a copy
    assert first["energies"] == again["energies"] and first["best"] == again["best"]
    assert len(first["energies"]) == 10 and first["seed"] == 5
    assert first["qubo"]["num_variables"] == formulation.bqm.num_variables
    assert first["metrics"]["accuracy_before"] == again["metrics"]["accuracy_before"]


def test_a_run_decodes_each_distinct_read_once(digits_cnn_workspace, monkeypatch):
    import dataclasses

    import core.runs
    from core.runs import complete_run, formulate

    formulation = formulate(digits_cnn_workspace)
    decoded, records = [], []
    solve = core.runs.solve_formulation

    def recording_solve(*args, **kwargs):
        solved = solve(*args, **kwargs)
        records.append(len(solved.sampleset))
        return solved

    def counting(sample):
        decoded.append(1)
        return formulation.decoder(sample)

    monkeypatch.setattr(core.runs, "solve_formulation", recording_solve)
    report = complete_run(digits_cnn_workspace, dataclasses.replace(formulation, decoder=counting), num_reads=20,
                          compute_exact=False, latency_repeats=2)
    assert len(report["feasible_reads"]) == 20
    assert len(decoded) == records[0]  # each distinct read once (it was twice, plus the lowest again)


def test_best_decision_prefers_a_feasible_read_over_a_lower_infeasible_one():
    import dimod

    from core.formulations.base import Decision, Formulation
    from core.runs import best_decision

    bqm = dimod.BinaryQuadraticModel({"a": -2.0, "b": -1.0}, {}, 0.0, "BINARY")

    def decode(sample):
        ok = sample["a"] + sample["b"] == 1  # exactly one on
        return Decision({"pick": "a" if sample["a"] else "b"}, ok, [] if ok else ["not one-hot"])

    formulation = Formulation("toy", bqm, decode)
    sampleset = dimod.SampleSet.from_samples_bqm([{"a": 1, "b": 1}, {"a": 1, "b": 0}, {"a": 0, "b": 0}], bqm)
    sample, decision = best_decision(formulation, sampleset)
    assert sample == {"a": 1, "b": 0} and decision.feasible
    infeasible_only = dimod.SampleSet.from_samples_bqm([{"a": 1, "b": 1}, {"a": 0, "b": 0}], bqm)
    sample, decision = best_decision(formulation, infeasible_only)
    assert sample == {"a": 1, "b": 1} and not decision.feasible
