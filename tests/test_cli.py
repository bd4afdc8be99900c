"""``python -m core`` as a user runs it: real subprocesses from the repository
root (issue 2 "Command line", DESIGN section 5).

Each interpreter start costs a few seconds, so all commands are started at once
by one module fixture and the tests only inspect their results. Sampler
variants of ``run`` are exercised in-process in test_run_pipeline.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dimod
import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DWAVE_") and k != "QCL_DEBUG"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    commands = {
        "models": ["models"],
        "samplers": ["samplers"],
        "evaluate": ["evaluate", "--model", "digits-cnn", "--repeats", "3", "--out", str(out / "tmp" / "report.json")],
        "unknown-model": ["evaluate", "--model", "no-such-net", "--out", str(out / "unknown.json")],
        "run": ["run", "--model", "digits-cnn", "--method", "mixed-precision", "--sampler", "sa", "--reads", "20",
                "--seed", "0", "--latency-repeats", "3", "--out", str(out / "r.json"), "--bqm", str(out / "b.json")],
        "reads-0": ["run", "--model", "digits-cnn", "--sampler", "sa", "--reads", "0", "--out", str(out / "r0.json")],
        "dwave": ["run", "--model", "digits-cnn", "--sampler", "dwave", "--reads", "5", "--no-exact",
                  "--out", str(out / "dwave.json")],
    }
    env = _env(XDG_CONFIG_HOME=str(out / "config"))  # no dwave.conf either
    procs = {
        key: subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for key, args in commands.items()
    }
    results = {}
    try:
        for key, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
            results[key] = Result(proc.returncode, stdout, stderr)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return out, results


def _assert_one_plain_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert lines[0].startswith("error: ")
    return lines[0]


def test_models_lists_all_six(cli):
    _, results = cli
    r = results["models"]
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    assert names == ["digits-cnn", "digits-mlp", "resnet18", "googlenet", "densenet121", "mobilenet_v3_small"]


def test_samplers_lists_the_registry(cli):
    _, results = cli
    r = results["samplers"]
    assert r.returncode == 0, r.stderr
    first_words = {line.split()[0] for line in r.stdout.splitlines() if line and not line[0].isspace()}
    assert {"exact", "sa", "tabu", "mock-qpu-pegasus", "dwave"} <= first_words
    dwave_line = next(line for line in r.stdout.splitlines() if line.startswith("dwave "))
    assert "unavailable" in dwave_line and "DWAVE_API_TOKEN" in dwave_line  # env cleared for the subprocess
    sa_line = next(line for line in r.stdout.splitlines() if line.startswith("sa "))
    assert "available" in sa_line and "unavailable" not in sa_line


def test_evaluate_writes_the_report(cli):
    out, results = cli
    r = results["evaluate"]
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "tmp" / "report.json").read_text())  # parent folder created
    assert report["model"] == "digits-cnn"
    assert report["accuracy"] >= 0.95 and 0 < report["loss"] < 1
    assert report["params"] == 9930 and report["size_bits"] == 32 * 9930
    assert set(report["latency"]["ms_per_image"]) == {"1", "64"}
    assert all(v > 0 for v in report["latency"]["ms_per_image"].values())
    assert report["latency"]["repeats"] == 3 and report["latency"]["threads"] == 1
    assert "accuracy" in r.stdout


def test_unknown_model_is_one_plain_line(cli):
    out, results = cli
    r = results["unknown-model"]
    assert r.returncode != 0
    line = _assert_one_plain_line(r)
    assert "no-such-net" in line and "digits-cnn" in line
    assert not (out / "unknown.json").exists()


def test_zero_reads_exits_2_with_a_plain_message(cli):
    out, results = cli
    r = results["reads-0"]
    assert r.returncode == 2
    assert "--reads" in _assert_one_plain_line(r)
    assert not (out / "r0.json").exists()


def test_dwave_without_token_is_a_plain_error(cli):
    out, results = cli
    r = results["dwave"]
    assert r.returncode != 0
    line = _assert_one_plain_line(r)
    assert "token" in line.lower() and "DWAVE_API_TOKEN" in line
    assert not (out / "dwave.json").exists()


# ----------------------------------------------------------------------------- the run report contract

METRICS = {"accuracy_before", "accuracy_after", "size_bits_before", "size_bits_after", "compression_ratio",
           "sparsity", "latency_ms_before", "latency_ms_after"}
TIMING = {"build_s", "embed_s", "sample_s", "evaluate_s"}
OPTION_FIELDS = {"option", "distortion", "cost_bits", "kept_params", "energy"}


@pytest.fixture(scope="module")
def run_report(cli):
    out, results = cli
    r = results["run"]
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return json.loads((out / "r.json").read_text()), json.loads((out / "b.json").read_text())


def test_run_report_has_the_design_fields(run_report):
    report, _ = run_report
    assert report["model"] == "digits-cnn" and report["method"] == "mixed-precision"
    assert report["sampler"] == "sa" and report["seed"] == 0
    assert set(report["qubo"]) >= {"num_variables", "num_interactions"}
    assert len(report["energies"]) == 20 and all(isinstance(e, float) for e in report["energies"])
    assert set(report["best"]) >= {"energy", "feasible", "decision", "sample"}
    assert set(report["exact"]) >= {"energy", "method"}
    assert set(report["metrics"]) >= METRICS
    assert set(report["timing"]) >= TIMING
    assert all(v >= 0 for v in report["timing"].values())
    for key in ("budget_bits", "lambda_bits", "lambda_sparsity"):
        assert key in report
    assert [u["name"] for u in report["units"]] == ["conv1", "conv2", "fc"]
    for unit in report["units"]:
        assert unit["params"] > 0 and unit["options"]
        for option in unit["options"]:
            assert set(option) >= OPTION_FIELDS


def test_run_report_is_consistent(run_report):
    report, _ = run_report
    best, metrics = report["best"], report["metrics"]
    assert best["feasible"] is True
    assert min(report["energies"]) == pytest.approx(best["energy"], abs=1e-12)
    flags = report["feasible_reads"]  # one per read, aligned with energies
    assert len(flags) == len(report["energies"]) == report["num_reads"]
    assert report["feasible_fraction"] == pytest.approx(sum(flags) / len(flags))
    assert best["energy"] >= report["exact"]["energy"] - 1e-9
    assert metrics["size_bits_before"] == 32 * 9930
    assert metrics["compression_ratio"] == pytest.approx(metrics["size_bits_before"] / metrics["size_bits_after"])
    assert 0 <= metrics["sparsity"] <= 1 and metrics["accuracy_before"] >= 0.95
    assert metrics["latency_ms_before"] > 0 and metrics["latency_ms_after"] > 0
    # the decision is the one-hot sample, and its size is the sum of the chosen costs
    units = {u["name"]: u for u in report["units"]}
    assert set(best["decision"]) == set(units)
    chosen_cost = 0
    for name, choice in best["decision"].items():
        ones = [label for label, value in best["sample"].items() if value == 1 and label.startswith(f"{name}@")]
        assert ones == [f"{name}@{choice}"]
        option = next(o for o in units[name]["options"] if str(o["option"]) == str(choice))
        chosen_cost += option["cost_bits"]
    assert chosen_cost == metrics["size_bits_after"]


def test_run_tables_can_be_rechecked_by_hand(run_report):
    """cost_bits = bits * weights + 32 * (bias + one scale per output channel); per-option energy is DESIGN F1's
    linear term."""
    report, _ = run_report
    biases = {"conv1": 16, "conv2": 32, "fc": 10}
    total_params = sum(u["params"] for u in report["units"])
    for unit in report["units"]:
        weights = unit["params"] - biases[unit["name"]]
        for o in unit["options"]:
            bits = {"prune": 0, "keep": 32}.get(o["option"], o["option"])
            scales = biases[unit["name"]] if 0 < bits < 32 else 0  # one per output channel, as biases here
            assert o["cost_bits"] == (0 if bits == 0 else bits * weights + 32 * (biases[unit["name"]] + scales))
            assert o["kept_params"] == (0 if bits == 0 else unit["params"])
            expected = (o["distortion"] + report["lambda_bits"] * o["cost_bits"] / (32 * total_params)
                        + report["lambda_sparsity"] * o["kept_params"] / total_params)
            assert o["energy"] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_run_bqm_file_reproduces_the_best_energy(run_report):
    report, serial = run_report
    bqm = dimod.BinaryQuadraticModel.from_serializable(serial)
    assert bqm.num_variables == report["qubo"]["num_variables"]
    assert bqm.num_interactions == report["qubo"]["num_interactions"]
    assert bqm.vartype is dimod.BINARY
    assert set(bqm.variables) == set(report["best"]["sample"])
    assert math.isclose(bqm.energy(report["best"]["sample"]), report["best"]["energy"], rel_tol=1e-9, abs_tol=1e-9)


def test_feasible_reads_follow_the_record_order_of_any_sampleset():
    import dimod

    from core.runs import energies_of, feasible_reads, formulate
    from core.workspace import open_workspace

    f = formulate(open_workspace("digits-cnn"), "mixed-precision")
    variables = list(f.bqm.variables)
    ok = dict.fromkeys(variables, 0)
    for unit in {v.split("@")[0] for v in variables}:
        ok[f"{unit}@keep"] = 1
    bad = dict.fromkeys(variables, 0)  # no option chosen: infeasible
    # record order: the feasible sample first, though its energy is the higher one
    ss = dimod.SampleSet.from_samples([ok, bad], "BINARY", energy=[1.0, -1.0], num_occurrences=[3, 1])
    assert energies_of(ss) == [1.0, 1.0, 1.0, -1.0]
    assert feasible_reads(f, ss) == [True, True, True, False]
