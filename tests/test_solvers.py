"""Tests for core.solvers: registry, every sampler, seeds, groups, tokens.

Fast, offline and seeded. Run with ``python -m pytest tests/test_solvers.py``.
No test talks to D-Wave Leap: the cloud samplers are exercised with a bogus
token against an unreachable endpoint, or with MockDWaveSampler substituted.
"""

from __future__ import annotations

import logging
import re
import unittest

import dimod
import dimod.testing
import numpy as np
import pytest

from core.errors import InvalidInputError, QCLError, UnavailableError
from core.solvers import (
    TimingComposite,
    available_samplers,
    get_sampler,
    infer_onehot_groups,
    resolve_groups,
    sampler_info,
    sampler_names,
    solve,
)
from core.solvers import qpu as qpu_module
from core.solvers.classical import ExactSampler
from core.solvers.ga import GeneticAlgorithmSampler
from core.solvers.rl import ReinforceSampler
from core.solvers.sqa import SQASampler

LOCAL = [
    "exact",
    "sa",
    "tabu",
    "steepest-descent",
    "sqa",
    "mock-qpu-pegasus",
    "mock-qpu-zephyr",
    "ga",
    "rl",
]
CLOUD = ["dwave", "leap-hybrid"]
SECRET = "DEV-0123456789abcdef-SECRET-TOKEN"

# Budgets that keep the file fast while leaving the baselines enough search.
PARAMS: dict[str, dict] = {
    "tabu": {"timeout": 20},
    "sqa": {"num_sweeps": 300},
    "mock-qpu-pegasus": {"num_sweeps": 300},
    "mock-qpu-zephyr": {"num_sweeps": 300},
    "ga": {"pop_size": 40, "num_generations": 60},
    "rl": {"num_iterations": 120, "batch_size": 32},
}
READS = {"mock-qpu-pegasus": 100, "mock-qpu-zephyr": 100, "ga": 5, "rl": 5}


def random_bqm(
    n: int, seed: int, vartype: str = "BINARY"
) -> dimod.BinaryQuadraticModel:
    rng = np.random.default_rng(seed)
    bqm = dimod.generators.gnp_random_bqm(
        n,
        0.5,
        vartype,
        random_state=seed,
        bias_generator=lambda k: rng.uniform(-1, 1, k),
    )
    return bqm


def onehot_bqm(units: int, options: int, seed: int) -> dimod.BinaryQuadraticModel:
    """A small F1-like problem: (unit, option) labels, chain pairwise terms, penalty."""
    rng = np.random.default_rng(seed)
    bqm = dimod.BinaryQuadraticModel("BINARY")
    for u in range(units):
        for k in range(options):
            bqm.add_variable((f"layer{u}", k), rng.uniform(0, 1))
    for u in range(units - 1):
        for k in range(options):
            for m in range(options):
                bqm.add_interaction(
                    (f"layer{u}", k), (f"layer{u + 1}", m), rng.uniform(-0.3, 0.3)
                )
    for u in range(units):
        group = [(f"layer{u}", k) for k in range(options)]
        bqm.update(dimod.generators.combinations(group, 1, strength=4.0))
    return bqm


def exact_energy(bqm: dimod.BinaryQuadraticModel) -> float:
    return float(dimod.ExactSolver().sample(bqm).first.energy)


@pytest.fixture(autouse=True)
def _no_token(monkeypatch):
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_sampler_with_help():
    infos = {info.name: info for info in available_samplers()}
    assert (
        list(infos)
        == sampler_names()
        == LOCAL[:5]
        + CLOUD[:0]
        + [
            "mock-qpu-pegasus",
            "mock-qpu-zephyr",
            "dwave",
            "leap-hybrid",
            "ga",
            "rl",
        ]
    )
    for name in LOCAL:
        assert infos[name].is_available, infos[name].reason_unavailable
        assert infos[name].description
        assert all(p.help for p in infos[name].parameters)
    for name in CLOUD:
        assert not infos[name].is_available
        assert "DWAVE_API_TOKEN" in infos[name].reason_unavailable
        assert infos[name].needs_token
    assert "not quantum physics" in infos["mock-qpu-pegasus"].description
    assert "chain" in infos["mock-qpu-zephyr"].description


def test_cloud_samplers_available_with_token(monkeypatch):
    assert sampler_info("dwave", token=SECRET).is_available
    monkeypatch.setenv("DWAVE_API_TOKEN", SECRET)
    assert sampler_info("leap-hybrid").is_available


def test_aliases_and_unknown_names():
    assert sampler_info("neal").name == "sa"
    assert sampler_info("Steepest_Descent").name == "steepest-descent"
    with pytest.raises(InvalidInputError, match="Unknown sampler 'annealer9000'"):
        get_sampler("annealer9000")
    with pytest.raises(InvalidInputError, match="valid options"):
        get_sampler("sa", temperature=3)


# --------------------------------------------------------------------------- sampler API


@pytest.mark.parametrize("name", LOCAL)
def test_registry_samplers_pass_dimod_api_checks(name):
    sampler = get_sampler(name)
    dimod.testing.assert_sampler_api(sampler)
    dimod.testing.assert_composite_api(sampler)
    assert isinstance(sampler, TimingComposite)


@pytest.mark.parametrize(
    "sampler",
    [ExactSampler(), SQASampler(), GeneticAlgorithmSampler(), ReinforceSampler()],
    ids=lambda s: type(s).__name__,
)
def test_sampler_classes_pass_dimod_api_checks(sampler):
    dimod.testing.assert_sampler_api(sampler)


def test_simulated_qpu_is_structured():
    sampler = qpu_module.SimulatedQPUSampler("zephyr")
    dimod.testing.assert_sampler_api(sampler)
    dimod.testing.assert_structured_api(sampler)
    assert "seed" in sampler.parameters


@dimod.testing.load_sampler_bqm_tests(ExactSampler())
class TestExactSamplerDimodBQMs(unittest.TestCase):
    """dimod's generated tests: empty, one variable, paths; every BQM class."""


@dimod.testing.load_sampler_bqm_tests(SQASampler(num_sweeps=100))
class TestSQASamplerDimodBQMs(unittest.TestCase):
    """dimod's generated tests for the OpenJij wrapper."""


@dimod.testing.load_sampler_bqm_tests(GeneticAlgorithmSampler(num_generations=10))
class TestGeneticAlgorithmDimodBQMs(unittest.TestCase):
    """dimod's generated tests for the GA."""


@dimod.testing.load_sampler_bqm_tests(ReinforceSampler(num_iterations=10))
class TestReinforceDimodBQMs(unittest.TestCase):
    """dimod's generated tests for the RL agent."""


# --------------------------------------------------------------------------- quality


@pytest.mark.parametrize("name", LOCAL)
@pytest.mark.parametrize("seed", [0, 1])
def test_finds_exact_optimum_on_small_bqm(name, seed):
    bqm = random_bqm(8 if name.startswith("mock") else 10, seed)
    ss = solve(
        bqm, name, num_reads=READS.get(name, 20), seed=seed + 10, **PARAMS.get(name, {})
    )
    assert ss.first.energy == pytest.approx(exact_energy(bqm), abs=1e-9)
    dimod.testing.assert_sampleset_energies(ss, bqm)
    energies = ss.record.energy
    assert np.all(np.diff(energies) >= 0), "solve() sorts by energy"
    assert set(ss.info["timing"]) >= {"embed_s", "sample_s"}
    assert ss.info["sampler"] == name


@pytest.mark.parametrize("name", ["sa", "tabu", "sqa", "ga", "rl"])
def test_spin_problems_come_back_as_spin(name):
    bqm = random_bqm(6, 3, "SPIN")
    ss = solve(bqm, name, num_reads=10, seed=3, **PARAMS.get(name, {}))
    assert ss.vartype is dimod.SPIN
    assert ss.first.energy == pytest.approx(exact_energy(bqm))


@pytest.mark.parametrize("name", ["ga", "rl"])
def test_onehot_groups_keep_baselines_feasible(name):
    bqm = onehot_bqm(units=4, options=4, seed=2)
    ss = solve(bqm, name, num_reads=5, seed=4, groups="auto", **PARAMS[name])
    groups = infer_onehot_groups(bqm.variables)
    for sample in ss.samples():
        assert all(sum(sample[v] for v in g) == 1 for g in groups)
    assert ss.first.energy == pytest.approx(exact_energy(bqm))


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("name", LOCAL)
def test_same_seed_same_result(name):
    bqm = random_bqm(12, 5)
    runs = [
        solve(
            bqm, name, num_reads=10, seed=123, aggregate=False, **PARAMS.get(name, {})
        )
        for _ in range(2)
    ]
    a, b = runs
    assert np.array_equal(a.record.sample, b.record.sample)
    assert np.allclose(a.record.energy, b.record.energy)
    assert a.info["seed"] == (None if name == "exact" else 123)


def test_seed_is_drawn_and_recorded_when_missing():
    bqm = random_bqm(10, 6)
    first = solve(bqm, "sa", num_reads=5)
    seed = first.info["seed"]
    assert isinstance(seed, int)
    again = solve(bqm, "sa", num_reads=5, seed=seed)
    assert np.array_equal(first.record.sample, again.record.sample)


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5, "7", True])
def test_bad_seed_is_a_plain_error(seed):
    with pytest.raises(InvalidInputError, match="seed"):
        solve(random_bqm(3, 0), "sa", seed=seed)


# --------------------------------------------------------------------------- QPU-like


@pytest.mark.parametrize("name", ["mock-qpu-pegasus", "mock-qpu-zephyr"])
def test_simulated_qpu_records_embedding_and_chain_breaks(name):
    bqm = random_bqm(10, 7)
    ss = solve(bqm, name, num_reads=20, seed=2, **PARAMS[name])
    info = ss.info
    assert set(info["embedding"]) == set(bqm.variables)
    assert info["chain_strength"] > 0
    assert 0.0 <= info["chain_break_fraction"] <= 1.0
    assert info["timing"]["embed_s"] > 0
    assert info["embedding_summary"]["topology"] == name.rsplit("-", 1)[1]


def test_simulated_qpu_options_reach_the_embedding():
    bqm = random_bqm(10, 8)
    sampler = get_sampler(
        "mock-qpu-pegasus", embedding_method="heuristic", chain_strength=2.5
    )
    ss = solve(bqm, sampler, num_reads=5, seed=1)
    assert ss.info["embedding_summary"]["method"] == "heuristic"
    assert ss.info["chain_strength"] == 2.5
    ss = solve(
        bqm, sampler, num_reads=5, seed=1, chain_strength=4.0, embedding_method="clique"
    )
    assert ss.info["chain_strength"] == 4.0
    assert ss.info["embedding_summary"]["method"] == "clique"


# --------------------------------------------------------------------------- errors


def test_exact_refuses_large_problems():
    with pytest.raises(
        InvalidInputError, match="limited to 20 variables; this problem has 21"
    ):
        solve(random_bqm(21, 0), "exact")


def test_unknown_sample_parameter_lists_valid_ones():
    with pytest.raises(InvalidInputError, match="valid parameters: .*num_sweeps"):
        solve(random_bqm(4, 0), "sa", temperature=1.0)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ga", {"pop_size": 0}),
        ("ga", {"crossover": "three-point"}),
        ("ga", {"mutation_rate": 2.0}),
        ("rl", {"learning_rate": -1}),
        ("rl", {"entropy_coef": -0.1}),
        ("sqa", {"trotter": 0}),
        ("ga", {"groups": [["nope"]]}),
        ("rl", {"groups": "by-unit"}),
    ],
)
def test_invalid_parameters_are_plain_errors(name, params):
    with pytest.raises(InvalidInputError):
        solve(random_bqm(4, 0), name, num_reads=2, seed=0, **params)


def test_resolve_groups_validation():
    bqm = onehot_bqm(2, 3, seed=0)
    assert resolve_groups(bqm, None) == []
    assert len(resolve_groups(bqm, "auto")) == 2
    with pytest.raises(InvalidInputError, match="more than one"):
        resolve_groups(bqm, [[("layer0", 0)], [("layer0", 0)]])
    with pytest.raises(InvalidInputError, match="at least one"):
        resolve_groups(bqm, [[]])


def test_progress_callback_is_called():
    calls: list[tuple[int, int]] = []
    solve(
        random_bqm(6, 0),
        "rl",
        num_reads=2,
        seed=0,
        progress_callback=lambda done, total: calls.append((done, total)),
        num_iterations=7,
    )
    assert calls[-1] == (7, 7) and len(calls) == 7
    calls.clear()
    solve(
        random_bqm(6, 0),
        "ga",
        num_reads=2,
        seed=0,
        progress_callback=lambda *a: calls.append(a),
        num_generations=5,
    )
    assert calls[-1] == (5, 5)


# --------------------------------------------------------------------------- tokens


def _assert_secret_absent(text: str) -> None:
    assert SECRET not in text
    assert SECRET[:16] not in text


@pytest.mark.parametrize("name", CLOUD)
def test_missing_token_is_a_clear_error(name):
    with pytest.raises(UnavailableError) as info:
        get_sampler(name)
    assert isinstance(info.value, QCLError)
    assert "DWAVE_API_TOKEN" in str(info.value)
    assert "mock-qpu-pegasus" in str(info.value)


@pytest.mark.parametrize("name", CLOUD)
@pytest.mark.parametrize("via_env", [False, True])
def test_unreachable_leap_fails_fast_without_leaking_token(
    name, via_env, monkeypatch, caplog, capsys
):
    """The real DWaveSampler / LeapHybridSampler, a bogus token, no server."""
    caplog.set_level(logging.DEBUG)
    config = {"endpoint": "http://127.0.0.1:9/sapi/"}  # nothing listens on port 9
    if via_env:
        monkeypatch.setenv("DWAVE_API_TOKEN", SECRET)
    else:
        config["token"] = SECRET
    monkeypatch.setattr(
        qpu_module,
        "_client_config",
        lambda timeout, extra: {
            "request_timeout": 2.0,
            "http_retry_total": 0,
            **extra,
            **config,
        },
    )
    with pytest.raises(UnavailableError) as info:
        get_sampler(name, request_timeout=2.0, **({} if via_env else {"token": SECRET}))
    message = str(info.value)
    assert "Could not reach D-Wave Leap" in message or "failed" in message
    _assert_secret_absent(message)
    _assert_secret_absent(repr(info.value))
    assert info.value.__cause__ is None
    _assert_secret_absent(caplog.text)
    captured = capsys.readouterr()
    _assert_secret_absent(captured.out + captured.err)


def test_rejected_token_message_is_redacted(monkeypatch, caplog):
    from dwave.cloud.exceptions import SolverAuthenticationError

    def reject(**config):
        logging.getLogger("dwave.cloud.client.base").debug("config: %r", config)
        raise SolverAuthenticationError(f"Invalid token {config['token']}")

    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(qpu_module, "_connect_dwave_sampler", reject)
    with pytest.raises(UnavailableError, match="rejected the API token") as info:
        get_sampler("dwave", token=SECRET)
    _assert_secret_absent(str(info.value))
    _assert_secret_absent(caplog.text)
    assert "config:" in caplog.text  # the record was kept, only masked


def test_qpu_code_path_with_mock_dwave_sampler(monkeypatch):
    """`dwave` end to end, with MockDWaveSampler standing in for the QPU."""
    from dwave.system.testing import MockDWaveSampler

    received: dict = {}

    def connect(**config):
        received.update(config)
        return MockDWaveSampler(topology_type="pegasus", topology_shape=[6], substitute_kwargs={"seed": 2})

    monkeypatch.setattr(qpu_module, "_connect_dwave_sampler", connect)
    monkeypatch.setenv("DWAVE_API_TOKEN", SECRET)
    sampler = get_sampler("dwave")
    assert received["token"] == SECRET and received["http_retry_total"] == 0
    _assert_secret_absent(
        repr(sampler) + repr(sampler.child) + repr(sampler.child.child)
    )
    bqm = random_bqm(6, 1)
    ss = solve(bqm, sampler, num_reads=10, seed=1)
    assert set(ss.info["embedding"]) == set(bqm.variables)
    assert ss.info["chain_strength"] > 0 and ss.info["chain_break_fraction"] is not None
    assert "qpu_timing" in ss.info
    _assert_secret_absent(repr(ss.info))


def test_leap_hybrid_code_path_with_stand_in(monkeypatch):
    monkeypatch.setattr(
        qpu_module, "_connect_leap_hybrid", lambda **config: dimod.ExactSolver()
    )
    bqm = random_bqm(5, 2)
    ss = solve(bqm, "leap-hybrid", config={"token": SECRET}, num_reads=3)
    assert ss.first.energy == pytest.approx(exact_energy(bqm))
    assert ss.info["timing"]["embed_s"] == 0.0


def test_cloud_failure_during_sampling_is_plain(monkeypatch):
    import requests

    class Flaky(dimod.ExactSolver):
        def sample(self, bqm, **kwargs):
            raise requests.ConnectionError(f"connection reset while using {SECRET}")

    monkeypatch.setattr(qpu_module, "_connect_leap_hybrid", lambda **config: Flaky())
    with pytest.raises(UnavailableError, match="Could not reach D-Wave Leap") as info:
        solve(random_bqm(3, 0), "leap-hybrid", config={"token": SECRET})
    _assert_secret_absent(str(info.value))


def test_rl_handles_onehot_groups_of_unequal_size():
    """The classifier of a real model has no prune option, so its group is one shorter."""
    bqm = dimod.BinaryQuadraticModel(
        {"a@1": 0.3, "a@2": 0.1, "a@3": 0.2, "b@1": 0.5, "b@2": -0.1}, {("a@2", "b@2"): 0.05}, 0.0, "BINARY"
    )
    for group in (["a@1", "a@2", "a@3"], ["b@1", "b@2"]):
        bqm.add_linear_equality_constraint([(v, 1.0) for v in group], 2.0, -1.0)
    groups = [["a@1", "a@2", "a@3"], ["b@1", "b@2"]]
    ss = solve(bqm, "rl", num_reads=10, seed=0, groups=groups)
    assert ss.first.sample == {"a@1": 0, "a@2": 1, "a@3": 0, "b@1": 0, "b@2": 1}
    assert np.isfinite(ss.record.energy).all()


@pytest.mark.parametrize("sampler, params, message", [
    ("sa", {"num_sweeps": 0}, "sa's num_sweeps must be a whole number of at least 1; got 0."),
    ("sa", {"num_sweeps": -1}, "at least 1"),
    ("sa", {"beta_range": "banana"}, "two positive numbers, hot then cold"),
    ("sa", {"beta_range": [10.0, 0.1]}, "hot then cold"),
    ("sa", {"beta_schedule_type": "cubic"}, "must be one of 'linear', 'geometric', 'custom'"),
    ("sa", {"beta_schedule_type": "custom"}, "'custom' needs beta_schedule"),
    ("tabu", {"timeout": -5}, "positive number"),
    ("sqa", {"trotter": 1}, "at least 2"),
    ("ga", {"mutation_rate": 1.5}, "probability"),
    ("mock-qpu-pegasus", {"embedding_method": "magic"}, "'auto', 'clique', 'heuristic'"),
    ("mock-qpu-pegasus", {"chain_strength": -1.0}, "positive number"),
])
def test_bad_parameter_values_are_refused_plainly_before_sampling(sampler, params, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        solve(random_bqm(4, 0), sampler, num_reads=2, seed=0, **params)


def test_values_of_every_accepted_form_still_pass():
    """Numbers parsed from text, numpy arrays and values, a chain-strength function, a custom schedule."""
    from dwave.embedding.chain_strength import uniform_torque_compensation

    bqm = random_bqm(4, 0)
    solve(bqm, "sa", num_reads=2, seed=0, beta_range=np.array([0.1, 10.0]), num_sweeps=np.int64(20))
    solve(bqm, "sa", num_reads=2, seed=0, beta_schedule_type="custom", beta_schedule=[0.1, 1.0, 10.0],
          num_sweeps=3, num_sweeps_per_beta=1)
    solve(bqm, "sqa", num_reads=2, seed=0, trotter=2, num_sweeps=10)
    solve(bqm, "mock-qpu-pegasus", num_reads=2, seed=0, chain_strength=uniform_torque_compensation)


def test_registry_sampler_refuses_bad_values_when_built_and_when_called():
    from core.methods.common import RegistrySampler

    with pytest.raises(InvalidInputError, match="num_sweeps"):
        RegistrySampler("sa", params={"num_sweeps": 0})
    sampler = RegistrySampler("sa")
    with pytest.raises(InvalidInputError, match="beta_range"):
        sampler(random_bqm(4, 0), num_reads=2, seed=0, beta_range=[0.0, 1.0])
    assert sampler(random_bqm(4, 0), num_reads=2, seed=0, num_sweeps=10).info["sampler"] == "sa"
