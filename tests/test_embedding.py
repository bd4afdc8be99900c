"""Tests for core.embedding: topologies, minor embedding, chains, the composite.

Fast, offline and seeded. Run with ``python -m pytest tests/test_embedding.py``.
"""

from __future__ import annotations

import unittest

import dimod
import dimod.testing
import networkx as nx
import numpy as np
import pytest
from dwave.embedding import is_valid_embedding
from dwave.embedding.chain_strength import uniform_torque_compensation

from core.embedding import (
    EmbeddingNotFoundError,
    MinorEmbeddingComposite,
    chain_break_fraction,
    clear_embedding_cache,
    compute_chain_strength,
    edge_density,
    find_embedding,
    get_topology,
    max_clique_size,
    problem_graph,
    qpu_graph,
    topology_names,
)
from core.errors import InvalidInputError, QCLError
from core.solvers.qpu import SimulatedQPUSampler

TOPOLOGIES = ["pegasus", "zephyr", "chimera"]


def dense_bqm(n: int, seed: int = 0) -> dimod.BinaryQuadraticModel:
    return dimod.generators.gnp_random_bqm(n, 1.0, "BINARY", random_state=seed)


def sparse_bqm(n: int, p: float = 0.1, seed: int = 0) -> dimod.BinaryQuadraticModel:
    return dimod.generators.gnp_random_bqm(n, p, "BINARY", random_state=seed)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_embedding_cache()
    yield
    clear_embedding_cache()


@pytest.fixture(scope="module")
def zephyr_qpu() -> MinorEmbeddingComposite:
    return MinorEmbeddingComposite(SimulatedQPUSampler("zephyr"))


# --------------------------------------------------------------------------- topologies


@pytest.mark.parametrize(
    ("name", "family", "qubits"),
    [
        ("pegasus", "pegasus", 5640),
        ("zephyr", "zephyr", 4800),
        ("chimera", "chimera", 2048),
    ],
)
def test_qpu_graph_shapes(name, family, qubits):
    graph = qpu_graph(name)
    assert graph.graph["family"] == family
    assert graph.number_of_nodes() == qubits
    assert qpu_graph(name.upper()) is graph  # cached, case-insensitive
    assert nx.is_frozen(graph)
    assert get_topology(name).num_qubits == qubits


def test_qpu_graph_matches_mock_sampler():
    sampler = SimulatedQPUSampler("pegasus")
    assert set(sampler.nodelist) == set(qpu_graph("pegasus").nodes)
    assert sampler.properties["topology"] == {"type": "pegasus", "shape": [16]}


def test_unknown_topology_is_a_plain_error():
    with pytest.raises(InvalidInputError, match="pegasus, zephyr, chimera"):
        qpu_graph("falcon")
    assert topology_names() == TOPOLOGIES


def test_max_clique_sizes():
    assert max_clique_size("chimera") == 64
    assert max_clique_size("pegasus") == 180


# --------------------------------------------------------------------------- embedding


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_dense_problem_uses_clique_and_is_valid(topology):
    bqm = dense_bqm(20)
    result = find_embedding(bqm, topology, seed=1)
    assert result.method == "clique"
    assert result.requested_method == "auto"
    assert set(result.embedding) == set(bqm.variables)
    assert is_valid_embedding(result.embedding, problem_graph(bqm), qpu_graph(topology))
    assert result.qubits_used == sum(result.chain_lengths.values())
    assert result.qubits_available == qpu_graph(topology).number_of_nodes()
    assert result.max_chain_length >= 1 and result.time_s >= 0


def test_dense_60_on_pegasus_clique_fast_path():
    bqm = dense_bqm(60)
    result = find_embedding(bqm, "pegasus")
    assert result.method == "clique"
    assert is_valid_embedding(
        result.embedding, problem_graph(bqm), qpu_graph("pegasus")
    )
    assert result.max_chain_length <= 8  # native clique chains on P16


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_sparse_problem_uses_heuristic_and_is_valid(topology):
    bqm = sparse_bqm(30, 0.1, seed=2)
    assert edge_density(problem_graph(bqm)) < 0.3
    result = find_embedding(bqm, topology, seed=3)
    assert result.method == "heuristic"
    assert is_valid_embedding(result.embedding, problem_graph(bqm), qpu_graph(topology))


def test_explicit_methods_and_isolated_variables():
    bqm = sparse_bqm(12, 0.2, seed=4)
    bqm.add_variable("lonely", 1.0)
    for method in ("clique", "heuristic"):
        result = find_embedding(bqm, "zephyr", method, seed=5)
        assert result.method == method
        assert "lonely" in result.embedding
        assert is_valid_embedding(
            result.embedding, problem_graph(bqm), qpu_graph("zephyr")
        )


def test_heuristic_is_reproducible_with_seed():
    bqm = sparse_bqm(25, 0.15, seed=6)
    a = find_embedding(bqm, "pegasus", "heuristic", seed=11, use_cache=False)
    b = find_embedding(bqm, "pegasus", "heuristic", seed=11, use_cache=False)
    assert a.embedding == b.embedding


def test_embedding_cache_by_graph_topology_method():
    bqm = dense_bqm(15)
    first = find_embedding(bqm, "pegasus")
    assert not first.from_cache
    first.embedding.clear()  # a caller mutating its copy must not poison the cache
    # same graph, other biases: still a cache hit
    reweighted = bqm.copy()
    reweighted.scale(3.0)
    again = find_embedding(reweighted, "pegasus")
    assert again.from_cache and len(again.embedding) == 15
    assert not find_embedding(bqm, "zephyr").from_cache
    assert not find_embedding(bqm, "pegasus", "heuristic", seed=1).from_cache


def test_problem_graph_inputs():
    edges = [("a", "b"), ("b", "c")]
    assert set(problem_graph(edges).edges) == {("a", "b"), ("b", "c")}
    with pytest.raises(InvalidInputError):
        problem_graph(42)  # type: ignore[arg-type]


def test_does_not_fit_names_the_ways_out():
    with pytest.raises(EmbeddingNotFoundError) as info:
        find_embedding(dense_bqm(70), "chimera", "clique")
    assert isinstance(info.value, QCLError)
    message = str(info.value)
    for hint in (
        "capacity budget",
        "fewer groups",
        "leap-hybrid",
        "Chimera C16",
        "64 variables",
    ):
        assert hint in message


def test_more_variables_than_qubits_fails_fast():
    graph = nx.empty_graph(3000)
    with pytest.raises(EmbeddingNotFoundError, match="does not fit"):
        find_embedding(graph, "chimera")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "magic"},
        {"seed": -1},
        {"seed": 1.5},
        {"timeout": 0},
        {"density_threshold": 2},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(InvalidInputError):
        find_embedding(dense_bqm(4), "pegasus", **kwargs)


def test_empty_problem():
    result = find_embedding(dimod.BQM("BINARY"), "pegasus")
    assert result.method == "empty" and result.embedding == {}


# --------------------------------------------------------------------------- chains


def test_chain_strength_default_and_overrides():
    bqm = dense_bqm(10)
    emb = find_embedding(bqm, "pegasus").embedding
    assert compute_chain_strength(bqm, emb) == pytest.approx(
        uniform_torque_compensation(bqm, emb)
    )
    assert compute_chain_strength(bqm, emb, prefactor=2.0) == pytest.approx(
        uniform_torque_compensation(bqm, emb, prefactor=2.0)
    )
    assert compute_chain_strength(bqm, emb, 3.5) == 3.5
    assert compute_chain_strength(bqm, emb, lambda b, e: 2.0) == 2.0
    for bad in (0, -1.0, float("nan"), "strong"):
        with pytest.raises(InvalidInputError):
            compute_chain_strength(bqm, emb, bad)


def test_chain_break_fraction_weighted_mean():
    ss = dimod.SampleSet.from_samples(
        [[0], [1]],
        "BINARY",
        energy=[0, 0],
        num_occurrences=[3, 1],
        chain_break_fraction=[0.0, 1.0],
    )
    assert chain_break_fraction(ss) == pytest.approx(0.25)
    assert (
        chain_break_fraction(dimod.SampleSet.from_samples([[0]], "BINARY", 0)) is None
    )


# --------------------------------------------------------------------------- composite


def test_composite_api(zephyr_qpu):
    dimod.testing.assert_sampler_api(zephyr_qpu)
    dimod.testing.assert_composite_api(zephyr_qpu)
    dimod.testing.assert_structured_api(zephyr_qpu.child)


def test_composite_records_embedding_and_chains(zephyr_qpu):
    bqm = dense_bqm(8, seed=3)
    ss = zephyr_qpu.sample(bqm, num_reads=100, seed=7)
    info = ss.info
    assert set(info["timing"]) >= {"embed_s", "sample_s"}
    assert is_valid_embedding(
        info["embedding"], problem_graph(bqm), qpu_graph("zephyr")
    )
    assert info["embedding_summary"]["method"] == "clique"
    assert info["chain_strength"] == pytest.approx(
        uniform_torque_compensation(bqm, info["embedding"])
    )
    assert 0.0 <= info["chain_break_fraction"] <= 1.0
    assert info["embedding_context"]["chain_break_method"] == "majority_vote"
    assert "chain_break_fraction" in ss.record.dtype.names
    dimod.testing.assert_sampleset_energies(ss, bqm)
    # annealing a chained physical problem is harder than the logical one
    # (chains freeze), so this needs many reads even for 8 variables
    exact = dimod.ExactSolver().sample(bqm).first.energy
    assert ss.first.energy == pytest.approx(exact)


def test_weak_chains_break_and_warn(zephyr_qpu):
    bqm = dimod.generators.ran_r(1, 12, seed=3)  # strong +-1 couplings, dense
    ss = zephyr_qpu.sample(
        bqm, num_reads=40, seed=1, chain_strength=0.05, embedding_method="clique"
    )
    assert ss.info["chain_strength"] == 0.05
    assert ss.info["chain_break_fraction"] > 0.1
    assert any("chains broke" in w for w in ss.info["warnings"])


def test_composite_is_reproducible(zephyr_qpu):
    bqm = sparse_bqm(15, 0.3, seed=8)
    a = zephyr_qpu.sample(bqm, num_reads=10, seed=3, embedding_method="heuristic")
    clear_embedding_cache()
    b = zephyr_qpu.sample(bqm, num_reads=10, seed=3, embedding_method="heuristic")
    assert a.info["embedding"] == b.info["embedding"]
    assert np.array_equal(a.record.sample, b.record.sample)


def test_weighted_random_chain_breaks_are_seeded_and_follow_the_chain_frequencies(zephyr_qpu):
    from core.embedding.composite import seeded_weighted_random

    # read 0: chain (a, b, c) broken 2:1 for +1, chain (d,) whole; labels in any order
    samples = dimod.SampleSet.from_samples(([[1, -1, 1, -1]] * 3000, ["c", "b", "a", "d"]), "SPIN", 0)
    values, rows = seeded_weighted_random(5)(samples, [["a", "b", "c"], ["d"]])
    again, _ = seeded_weighted_random(5)(samples, [["a", "b", "c"], ["d"]])
    assert np.array_equal(values, again) and np.array_equal(rows, np.arange(3000))
    assert (values[:, 1] == -1).all()
    assert np.mean(values[:, 0] == 1) == pytest.approx(2 / 3, abs=0.03)  # each read draws its own qubit

    bqm = dimod.generators.ran_r(1, 12, seed=3)
    runs = [zephyr_qpu.sample(bqm, num_reads=40, seed=1, chain_strength=0.05, embedding_method="clique",
                              chain_break_method="weighted_random") for _ in range(2)]
    assert runs[0].info["chain_break_fraction"] > 0.1  # chains do break, so the draws decide reads
    assert np.array_equal(runs[0].record.sample, runs[1].record.sample)


def test_composite_rejects_bad_parameters(zephyr_qpu):
    bqm = dense_bqm(3)
    with pytest.raises(InvalidInputError, match="annealing_speed"):
        zephyr_qpu.sample(bqm, annealing_speed=3)
    with pytest.raises(InvalidInputError):
        zephyr_qpu.sample(bqm, embedding_method="best")
    with pytest.raises(InvalidInputError):
        zephyr_qpu.sample(bqm, chain_break_method="vote")
    with pytest.raises(InvalidInputError):
        MinorEmbeddingComposite(dimod.ExactSolver())


def test_composite_empty_problem(zephyr_qpu):
    ss = zephyr_qpu.sample(dimod.BQM("SPIN"), num_reads=3)
    assert len(ss) == 3 and ss.info["chain_break_fraction"] == 0.0


def _shared_zephyr() -> MinorEmbeddingComposite:
    global _ZEPHYR
    try:
        return _ZEPHYR
    except NameError:
        _ZEPHYR = MinorEmbeddingComposite(SimulatedQPUSampler("zephyr", num_sweeps=200))
        return _ZEPHYR


@dimod.testing.load_sampler_bqm_tests(_shared_zephyr())
class TestEmbeddingCompositeDimodBQMs(unittest.TestCase):
    """dimod's generated sampler tests (empty, 1 variable, paths; all BQM types)."""


def test_heuristic_giving_up_is_a_plain_does_not_fit(monkeypatch):
    """minorminer raises RuntimeError ("Failed during initialization") for problems far too large."""
    import minorminer

    from core.embedding import EmbeddingNotFoundError, find_embedding

    def gives_up(*_args, **_kwargs):
        raise RuntimeError("Failed during initialization.")

    monkeypatch.setattr(minorminer, "find_embedding", gives_up)
    bqm = dimod.generators.gnp_random_bqm(12, 0.2, "BINARY", random_state=0)
    with pytest.raises(EmbeddingNotFoundError, match="does not fit"):
        find_embedding(bqm, "chimera", "heuristic", seed=0, use_cache=False)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_a_small_problem_in_separate_parts_is_embedded_together(topology):
    """One-hot groups without couplings between them: minorminer alone scatters them over the chip."""
    from core.embedding.embed import REGION_QUBITS_PER_ELEMENT, _central_order

    parts = nx.disjoint_union_all([nx.complete_graph(5), nx.complete_graph(5), nx.complete_graph(4)])
    result = find_embedding(parts, topology, "heuristic", seed=0, use_cache=False)
    assert is_valid_embedding(result.embedding, parts, qpu_graph(topology))
    topo = get_topology(topology)
    region = set(_central_order(topo.key, topo.graph)[: REGION_QUBITS_PER_ELEMENT * (14 + 26)])
    assert {q for chain in result.embedding.values() for q in chain} <= region


@pytest.mark.parametrize(
    ("compact", "whole", "kept"),
    [
        ({"a": (1, 2), "b": (3,)}, {"a": (7,), "b": (8, 9)}, "compact"),  # a tie: the compact one
        ({"a": (1, 2, 3), "b": (4,)}, {"a": (7, 8), "b": (9, 10)}, "whole"),  # a longer chain
        ({"a": (1, 2), "b": (3, 4)}, {"a": (7,), "b": (8, 9)}, "whole"),  # 33% more qubits
        ({}, {"a": (7,), "b": (8,)}, "whole"),  # the region was too small
    ],
)
def test_the_compact_embedding_is_kept_only_when_its_chains_are_as_good(monkeypatch, compact, whole, kept):
    import core.embedding.embed as embed

    full = get_topology("pegasus").graph
    monkeypatch.setattr(embed, "_minorminer", lambda _g, target, _s, _t: whole if target is full else compact)
    found = embed._heuristic(nx.path_graph(["a", "b"]), get_topology("pegasus"), 0, 10.0)
    assert found == (compact if kept == "compact" else whole)
