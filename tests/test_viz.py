"""Figure builders (core.viz): check what the figures contain, not only that they exist."""

from __future__ import annotations

import json
import math
from collections.abc import Hashable

import dimod
import dwave.graphs as dg
import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInputError
from core.viz import (
    PALETTE,
    chain_length_histogram,
    decision_bars,
    embedding_view,
    embedding_view_from_inspector,
    energy_ecdf,
    energy_histogram,
    inspector_data,
    inspector_embedding,
    option_bits,
    pareto_scatter,
    problem_graph,
    qubo_heatmap,
    sensitivity_heatmap,
)

UNITS = ("conv1", "conv2", "fc")
OPTIONS = ("prune", 4, 8)


def f1_bqm(seed: int = 0, *, labels: str = "tuple") -> dimod.BinaryQuadraticModel:
    """A small mixed-precision-like QUBO: one-hot per unit plus a few cross terms."""
    rng = np.random.default_rng(seed)

    def lab(u: str, o: object) -> Hashable:
        return (u, o) if labels == "tuple" else f"{u}@{o}"

    bqm = dimod.BinaryQuadraticModel("BINARY")
    # interleave the variables so grouping by block has something to do
    for o in OPTIONS:
        for u in UNITS:
            bqm.add_linear(lab(u, o), float(rng.normal()))
    for u in UNITS:
        for i, a in enumerate(OPTIONS):
            for b in OPTIONS[i + 1 :]:
                bqm.add_quadratic(lab(u, a), lab(u, b), 2.0)
    bqm.add_quadratic(lab("conv1", 4), lab("conv2", 4), -0.5)
    bqm.add_quadratic(lab("conv2", 8), lab("fc", 8), 0.3)
    return bqm


def trace(fig: go.Figure, name: str) -> go.BaseTraceType:
    found = [t for t in fig.data if t.name == name]
    assert found, f"no trace {name!r} in {[t.name for t in fig.data]}"
    return found[0]


def segments(t: go.BaseTraceType) -> int:
    """Number of line segments in a trace drawn with None separators."""
    xs = list(t.x)
    assert len(xs) % 3 == 0 and all(v is None for v in xs[2::3])
    return len(xs) // 3


# ----------------------------------------------------------------------------- QUBO heatmap


@pytest.mark.parametrize("labels", ["tuple", "string"])
def test_qubo_heatmap_matrix_blocks_and_hover(labels: str) -> None:
    bqm = f1_bqm(labels=labels)
    fig = qubo_heatmap(bqm)
    [hm] = fig.data
    assert isinstance(hm, go.Heatmap)
    z = np.array(hm.z, dtype=float)
    assert z.shape == (9, 9)
    # variables grouped by unit: conv1 options, then conv2, then fc
    names = [f"{u}@{o}" for u in UNITS for o in OPTIONS]
    assert list(hm.x) == names and list(hm.y) == names
    assert fig.layout.xaxis.type == "category"
    order = [
        (u, o) if labels == "tuple" else f"{u}@{o}" for u in UNITS for o in OPTIONS
    ]
    for i, a in enumerate(order):
        assert z[i, i] == pytest.approx(bqm.get_linear(a))
        for j, b in enumerate(order):
            if j > i:
                expected = bqm.get_quadratic(a, b, default=np.nan)
                assert (np.isnan(z[i, j]) and np.isnan(expected)) or z[
                    i, j
                ] == pytest.approx(expected)
            elif j < i:
                assert np.isnan(z[i, j])  # upper triangular
    # block ticks at block centres, labelled with the unit names; separators between blocks
    assert list(fig.layout.xaxis.ticktext) == list(UNITS)
    assert list(fig.layout.xaxis.tickvals) == [1.0, 4.0, 7.0]
    assert list(fig.layout.yaxis.ticktext) == list(UNITS)
    assert fig.layout.yaxis.autorange == "reversed"
    assert len(fig.layout.shapes) == 4  # 2 boundaries x (vertical + horizontal)
    # hover shows both variable names and the coefficient
    assert "%{y}" in hm.hovertemplate and "%{x}" in hm.hovertemplate
    assert "coefficient: %{z" in hm.hovertemplate
    assert hm.hoverongaps is False
    assert "9 variables, 11 interactions" in fig.layout.title.text
    # no hard-coded backgrounds (theme-neutral)
    assert fig.layout.paper_bgcolor is None and fig.layout.plot_bgcolor is None


def test_qubo_heatmap_symmetric_and_custom_blocks() -> None:
    bqm = f1_bqm()
    fig = qubo_heatmap(bqm, symmetric=True, block_of=lambda v: "all")
    z = np.array(fig.data[0].z, dtype=float)
    np.testing.assert_array_equal(np.isnan(z), np.isnan(z.T))
    assert np.nanmax(np.abs(z - z.T)) == 0
    assert list(fig.layout.xaxis.ticktext) == ["all"]


def test_qubo_heatmap_log_scale() -> None:
    bqm = dimod.BinaryQuadraticModel(
        {"a": 1000.0, "b": -0.01}, {("a", "b"): 1.0}, 0.0, "BINARY"
    )
    fig = qubo_heatmap(bqm, log_scale=True, log_threshold=0.1)
    hm = fig.data[0]
    raw = np.array(hm.customdata, dtype=float)
    z = np.array(hm.z, dtype=float)
    assert raw[0, 0] == 1000.0  # hover keeps the raw value
    assert z[0, 0] == pytest.approx(math.log10(1 + 1000.0 / 0.1))
    assert z[1, 1] == pytest.approx(-math.log10(1 + 0.01 / 0.1))
    assert z[0, 1] == pytest.approx(math.log10(1 + 1.0 / 0.1))
    assert "sym" in hm.colorbar.title.text
    assert "0" in hm.colorbar.ticktext and "1e+03" in hm.colorbar.ticktext
    assert "log" in fig.layout.title.text


def test_qubo_heatmap_aggregates_above_limit() -> None:
    bqm = f1_bqm()
    fig = qubo_heatmap(bqm, max_cells=50)
    hm = fig.data[0]
    z = np.array(hm.z, dtype=float)
    assert z.shape == (3, 3)
    assert "aggregated by block" in fig.layout.title.text
    lin = {u: sum(abs(bqm.get_linear((u, o))) for o in OPTIONS) for u in UNITS}
    # diagonal block: |linear| + three one-hot couplings of 2.0
    assert z[0, 0] == pytest.approx(lin["conv1"] + 6.0)
    assert z[0, 1] == pytest.approx(0.5)
    assert z[1, 2] == pytest.approx(0.3)
    assert np.isnan(z[0, 2]) and np.isnan(z[1, 0])
    assert list(fig.layout.xaxis.ticktext) == list(UNITS)
    custom = np.array(hm.customdata, dtype=float)
    assert custom[0, 0, 1] == 6  # terms: 3 linear + 3 one-hot couplings
    assert custom[0, 0, 0] == pytest.approx(z[0, 0])
    assert list(hm.x) == list(UNITS)
    assert "terms: %{customdata[1]}" in hm.hovertemplate and "%{y}" in hm.hovertemplate
    mean = qubo_heatmap(bqm, max_cells=50, aggregate="mean")
    assert np.array(mean.data[0].z, dtype=float)[0, 1] == pytest.approx(-0.5)
    assert "mean coefficient" in mean.layout.title.text


def test_qubo_heatmap_aggregates_unblocked_variables_in_bins() -> None:
    bqm = dimod.generators.gnp_random_bqm(50, 0.2, "BINARY", random_state=3)
    fig = qubo_heatmap(bqm, max_cells=100)
    z = np.array(fig.data[0].z, dtype=float)
    assert z.shape == (10, 10)
    assert np.nansum(z) == pytest.approx(
        sum(abs(b) for b in bqm.linear.values())
        + sum(abs(b) for b in bqm.quadratic.values())
    )


def test_qubo_heatmap_spin_and_empty() -> None:
    spin = dimod.BinaryQuadraticModel({"a": 1.0}, {("a", "b"): -1.0}, 0.0, "SPIN")
    fig = qubo_heatmap(spin)
    assert "SPIN model shown as QUBO" in fig.layout.title.text
    binary = spin.change_vartype("BINARY", inplace=False)
    assert np.array(fig.data[0].z, dtype=float)[0, 1] == pytest.approx(
        binary.get_quadratic("a", "b")
    )
    empty = qubo_heatmap(dimod.BinaryQuadraticModel("BINARY"))
    assert len(empty.data) == 0 and empty.layout.annotations


# ----------------------------------------------------------------------------- energies


def test_energy_histogram_overlay_and_exact_line() -> None:
    runs = {"sa": [-3.0, -3.0, -2.0, -1.0], "tabu": [-3.0, -2.5]}
    fig = energy_histogram(runs, exact=-3.0, num_occurrences={"tabu": [2, 3]})
    assert [t.name for t in fig.data] == ["sa", "tabu"]
    assert all(isinstance(t, go.Histogram) for t in fig.data)
    assert fig.layout.barmode == "overlay"
    assert len(fig.data[0].x) == 4
    assert sorted(fig.data[1].x) == [
        -3.0,
        -3.0,
        -2.5,
        -2.5,
        -2.5,
    ]  # expanded by occurrences
    assert fig.data[0].xbins.size == fig.data[1].xbins.size  # shared bins
    assert fig.data[0].histnorm == "probability"
    [line] = fig.layout.shapes
    assert line.x0 == line.x1 == -3.0
    assert any("exact optimum" in a.text for a in fig.layout.annotations)
    assert fig.layout.xaxis.title.text == "energy"
    no_exact = energy_histogram(runs)
    assert len(no_exact.layout.shapes) == 0
    with pytest.raises(InvalidInputError):
        energy_histogram({"a": [1.0, 2.0]}, num_occurrences={"a": [1]})
    assert len(energy_histogram({"a": []}).data) == 0


def test_energy_ecdf_steps_and_probability_at_optimum() -> None:
    fig = energy_ecdf(
        {"sa": [-3.0, -1.0, -3.0, -2.0], "w": [0.0, 1.0]},
        exact=-3.0,
        num_occurrences={"w": [1, 3]},
    )
    sa = trace(fig, "sa")
    # from 0 before the lowest energy of any run to 1 after the highest (range -3..1, padded by 2%)
    assert list(sa.x) == pytest.approx([-3.08, -3.0, -2.0, -1.0, 1.08])
    assert list(sa.y) == pytest.approx([0.0, 0.5, 0.75, 1.0, 1.0])  # P(optimum per read) = 0.5
    assert sa.line.shape == "hv"
    assert list(trace(fig, "w").y) == pytest.approx([0.0, 0.25, 1.0, 1.0])
    [line] = fig.layout.shapes
    assert line.x0 == -3.0
    # a run whose reads all reach one energy is a visible rise, not a lone point
    single = trace(energy_ecdf({"tabu": [-3.0] * 5, "sa": [-3.0, -1.0]}), "tabu")
    assert list(single.y) == [0.0, 1.0, 1.0] and single.x[0] < -3.0 < single.x[-1]


# ----------------------------------------------------------------------------- problem graph


def test_problem_graph_nodes_edges_and_highlight() -> None:
    bqm = f1_bqm()
    fig = problem_graph(bqm, highlight=("conv1", 4), seed=1)
    node_traces = [t for t in fig.data if t.mode == "markers"]
    assert [t.name for t in node_traces] == list(UNITS)
    assert sum(len(t.x) for t in node_traces) == bqm.num_variables
    assert sorted(c for t in node_traces for c in t.customdata) == sorted(
        f"{u}@{o}" for u in UNITS for o in OPTIONS
    )
    assert len({t.marker.color for t in node_traces}) == 3
    edge_traces = [t for t in fig.data if t.mode == "lines"]
    assert sum(segments(t) for t in edge_traces) == bqm.num_interactions
    assert [segments(t) for t in edge_traces if "J < 0" in t.name] == [1]
    hl = trace(fig, "highlighted")
    assert list(hl.customdata) == ["conv1@4"]
    assert "linear:" in node_traces[0].text[0]
    again = problem_graph(bqm, highlight=("conv1", 4), seed=1)
    assert list(again.data[-1].x) == list(hl.x)  # seeded layout
    with_slack = bqm.copy()
    with_slack.add_linear_from({"slack_budget_0": 1.0, "slack_budget_1": 2.0})
    with_slack.add_quadratic(("conv1", 4), "slack_budget_0", 0.5)
    names = [t.name for t in problem_graph(with_slack, seed=1).data if t.mode == "markers"]
    assert names[-1] == "slack variables" and names[:-1] == list(UNITS)


# ----------------------------------------------------------------------------- embedding


def path_chain(g: nx.Graph, start: int, length: int) -> list[int]:
    chain = [start]
    while len(chain) < length:
        nxt = next(q for q in sorted(g.adj[chain[-1]]) if q not in chain)
        chain.append(nxt)
    return chain


@pytest.fixture(scope="module")
def pegasus16() -> nx.Graph:
    return dg.pegasus_graph(16)


def test_embedding_view_pegasus16(pegasus16: nx.Graph) -> None:
    nodes = sorted(pegasus16.nodes)
    embedding = {
        "a": path_chain(pegasus16, nodes[0], 3),
        "b": [nodes[500]],
        "c": path_chain(pegasus16, nodes[2000], 4),
    }
    fig = embedding_view(embedding, "pegasus", pegasus16, highlight_var="c")
    unused, used = trace(fig, "unused qubits"), trace(fig, "used qubits")
    assert isinstance(unused, go.Scattergl) and isinstance(used, go.Scattergl)
    assert len(unused.x) + len(used.x) == pegasus16.number_of_nodes() == 5640
    assert len(used.x) == 8
    assert "128,128,128,0.25" in unused.marker.color  # faint
    # qubits of one chain share a colour, different chains differ
    by_var: dict[str, set[str]] = {}
    for v, c in zip(used.customdata, used.marker.color, strict=True):
        by_var.setdefault(v, set()).add(c)
    assert {v: len(c) for v, c in by_var.items()} == {"a": 1, "b": 1, "c": 1}
    assert len({next(iter(c)) for c in by_var.values()}) == 3
    assert "chain length: 4" in used.text[-1] and "variable: c" in used.text[-1]
    chain_traces = [t for t in fig.data if t.name == "chain edges"]
    assert all(isinstance(t, go.Scattergl) for t in chain_traces)
    expected_edges = sum(
        pegasus16.subgraph(ch).number_of_edges() for ch in embedding.values()
    )
    assert sum(segments(t) for t in chain_traces) == expected_edges
    hl = trace(fig, "highlighted chain")
    assert len(hl.x) == 4 and set(hl.customdata) == {"c"}
    assert (
        segments(trace(fig, "highlighted chain edges"))
        == pegasus16.subgraph(embedding["c"]).number_of_edges()
    )
    # positions come from dwave.graphs' own layout
    pos = dg.pegasus_layout(pegasus16)
    q = embedding["b"][0]
    i = list(used.customdata).index("b")
    assert (used.x[i], used.y[i]) == pytest.approx(tuple(pos[q]))
    assert "8 of 5640 qubits used" in fig.layout.title.text
    assert fig.layout.yaxis.scaleanchor == "x"


@pytest.mark.parametrize(
    ("topology", "graph"),
    [("zephyr", dg.zephyr_graph(12)), ("chimera", dg.chimera_graph(16))],
)
def test_embedding_view_other_topologies(topology: str, graph: nx.Graph) -> None:
    nodes = sorted(graph.nodes)
    embedding = {
        ("u", 1): path_chain(graph, nodes[10], 2),
        ("u", 2): path_chain(graph, nodes[300], 2),
    }
    bqm = dimod.BinaryQuadraticModel({}, {(("u", 1), ("u", 2)): 1.0}, 0.0, "BINARY")
    fig = embedding_view(embedding, topology, graph, bqm=bqm)
    assert len(trace(fig, "unused qubits").x) == len(graph) - 4
    assert len(trace(fig, "used qubits").x) == 4
    assert set(trace(fig, "used qubits").customdata) == {"u@1", "u@2"}
    # the two chains are far apart: no physical coupler between them
    assert all(t.name != "logical couplers" for t in fig.data)
    assert topology.capitalize() in fig.layout.title.text


def test_embedding_view_logical_couplers_and_errors(pegasus16: nx.Graph) -> None:
    q0 = min(pegasus16.nodes)
    q1 = min(pegasus16.adj[q0])
    embedding = {"a": [q0], "b": [q1]}
    bqm = dimod.BinaryQuadraticModel({}, {("a", "b"): -1.0}, 0.0, "BINARY")
    fig = embedding_view(embedding, "pegasus", pegasus16, bqm=bqm)
    assert segments(trace(fig, "logical couplers")) == 1
    with pytest.raises(InvalidInputError, match="not in the target graph"):
        embedding_view({"a": [10**7]}, "pegasus", pegasus16)
    with pytest.raises(InvalidInputError, match="two chains"):
        embedding_view({"a": [q0], "b": [q0]}, "pegasus", pegasus16)
    with pytest.raises(InvalidInputError, match="zephyr"):
        embedding_view(embedding, "zephyr", pegasus16)
    with pytest.raises(InvalidInputError, match="Unknown QPU topology"):
        embedding_view(embedding, "torus", pegasus16)


def test_chain_length_histogram() -> None:
    fig = chain_length_histogram(
        {"a": [1], "b": [2, 3], "c": [4, 5], "d": [6, 7, 8, 9]}
    )
    [bar] = fig.data
    assert list(bar.x) == [1, 2, 3, 4]
    assert list(bar.y) == [1, 2, 0, 1]
    assert "max 4" in fig.layout.title.text and "9 qubits" in fig.layout.title.text


# ----------------------------------------------------------------------------- inspector data


@pytest.fixture(scope="module")
def simulated_qpu_run() -> tuple:
    import minorminer
    from dwave.system import FixedEmbeddingComposite
    from dwave.system.testing import MockDWaveSampler

    bqm = dimod.generators.gnp_random_bqm(
        10, 1.0, "BINARY", random_state=5
    )  # K10: needs chains
    sampler = MockDWaveSampler(topology_type="pegasus", topology_shape=[16], substitute_kwargs={"seed": 3})
    embedding = minorminer.find_embedding(
        list(bqm.quadratic), sampler.edgelist, random_seed=11
    )
    assert embedding
    sampleset = FixedEmbeddingComposite(sampler, embedding).sample(
        bqm, num_reads=10, chain_strength=3.0
    )
    return bqm, sampleset, embedding, sampler


def test_inspector_data_from_mock_pegasus(simulated_qpu_run: tuple) -> None:
    bqm, sampleset, embedding, sampler = simulated_qpu_run
    data = inspector_data(
        bqm,
        sampleset,
        embedding,
        "pegasus",
        solver_properties=sampler.properties,
        chain_strength=3.0,
    )
    assert data["ready"] is True
    assert data["data"]["data"]["embedding"] == {
        str(v): sorted(c) for v, c in embedding.items()
    }
    stats = data["data"]["stats"]
    assert stats["max_chain_length"] == max(len(c) for c in embedding.values())
    assert stats["num_target_variables"] == sum(len(c) for c in embedding.values())
    assert stats["chain_strength"] == 3.0
    un = data["unembedded_answer"]
    assert un["energies"] == pytest.approx(list(sampleset.record.energy))
    assert sum(un["num_occurrences"]) == 10
    assert set(data["answer"]["active_variables"]) == {
        q for c in embedding.values() for q in c
    }
    assert inspector_embedding(data) == {v: sorted(c) for v, c in embedding.items()}

    fig = embedding_view_from_inspector(data, highlight_var=0)
    chain_edges = sum(segments(t) for t in fig.data if t.name == "chain edges")
    assert chain_edges >= sum(len(c) - 1 for c in embedding.values()) > 0
    used_qubits = sum(len(c) for c in embedding.values())
    assert len(trace(fig, "used qubits").x) == used_qubits
    assert len(trace(fig, "unused qubits").x) == len(sampler.nodelist) - used_qubits
    assert len(trace(fig, "highlighted chain").x) == len(embedding[0])

    # JSON round trip (e.g. saved with a run): the "qcl" entry still draws the view
    stored = json.loads(json.dumps({k: v for k, v in data.items() if k != "rel"}))
    again = embedding_view_from_inspector(stored)
    assert len(trace(again, "used qubits").x) == used_qubits
    assert again.layout.title.text == fig.layout.title.text


def test_inspector_data_from_composite_sampler(simulated_qpu_run: tuple) -> None:
    from dwave.system import FixedEmbeddingComposite

    bqm, sampleset, embedding, sampler = simulated_qpu_run
    composite = FixedEmbeddingComposite(sampler, embedding)
    data = inspector_data(bqm, sampleset, embedding, "pegasus", sampler=composite)
    assert data["qcl"]["qubits"] == sampler.properties["qubits"]
    assert data["data"]["data"]["embedding"] == {
        str(v): sorted(c) for v, c in embedding.items()
    }
    with pytest.raises(InvalidInputError, match="different variables"):
        inspector_data(
            bqm,
            dimod.SampleSet.from_samples([{"z": 0}], "BINARY", 0.0),
            embedding,
            "pegasus",
        )


def test_inspector_data_from_cloud_mocks_and_errors(simulated_qpu_run: tuple) -> None:
    bqm, sampleset, embedding, _sampler = simulated_qpu_run
    # no solver properties: dwave-cloud-client's mock solver data for Pegasus P16
    data = inspector_data(bqm, sampleset, embedding, "pegasus")
    assert data["qcl"]["topology"] == "pegasus" and data["qcl"]["shape"] == [16]
    assert (
        data["data"]["stats"]["chain_strength"] > 0
    )  # default: uniform torque compensation
    with pytest.raises(InvalidInputError, match="no chain"):
        inspector_data(bqm, sampleset, {0: embedding[0]}, "pegasus")
    with pytest.raises(InvalidInputError, match="does not have|not in"):
        inspector_data(bqm, sampleset, embedding, "chimera", shape=[2, 2, 4])
    with pytest.raises(InvalidInputError):
        inspector_data(bqm, sampleset, embedding, "torus")


def test_inspector_data_on_zephyr_target_graph() -> None:
    graph = dg.zephyr_graph(2)
    nodes = sorted(graph.nodes)
    a = nodes[0]
    b = min(graph.adj[a])
    bqm = dimod.BinaryQuadraticModel(
        {"x": -1.0, "y": 0.5}, {("x", "y"): -1.0}, 0.0, "BINARY"
    )
    sampleset = dimod.ExactSolver().sample(bqm)
    data = inspector_data(
        bqm, sampleset, {"x": [a], "y": [b]}, "zephyr", target_graph=graph
    )
    fig = embedding_view_from_inspector(data)
    assert len(trace(fig, "used qubits").x) == 2
    assert len(trace(fig, "unused qubits").x) == len(graph) - 2


# ----------------------------------------------------------------------------- decisions, Pareto, sensitivity


def test_option_bits() -> None:
    assert [
        option_bits(o) for o in ("prune", "keep", 4, "8", "4bit", "int2", "16 bits")
    ] == [0, 32, 4, 8, 4, 2, 16]
    assert option_bits([1, 2]) is None and option_bits(True) is None


def test_decision_bars_marks_pruned_layers() -> None:
    fig = decision_bars(
        {"conv1": 8, "conv2": "prune", "fc1": "keep", "fc2": "4"}, sizes={"conv1": 1600}
    )
    bars = fig.data[0]
    assert isinstance(bars, go.Bar)
    assert list(bars.x) == ["conv1", "conv2", "fc1", "fc2"]
    assert list(bars.y) == [8, 0, 32, 4]
    assert list(bars.text) == ["8", "pruned", "32", "4"]
    assert "size: 1,600 bits" in bars.hovertext[0]
    pruned = trace(fig, "pruned")
    assert list(pruned.x) == ["conv2"] and list(pruned.y) == [0]
    assert "1 of 4 pruned" in fig.layout.title.text
    with pytest.raises(InvalidInputError):
        decision_bars({"conv1": [0, 1, 2]})


def test_pareto_scatter_highlights_front() -> None:
    df = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "name": ["a", "b", "c", "d", "e"],
            "sampler": ["sa", "sa", "tabu", "tabu", "sa"],
            "size_bits_after": [100, 200, 150, 300, None],
            "accuracy_after": [0.90, 0.95, 0.85, 0.97, 0.99],
        }
    )
    fig = pareto_scatter(df)
    runs = [t for t in fig.data if t.name in ("sa", "tabu")]
    assert sum(len(t.x) for t in runs) == 4  # the run without a size is left out
    front = trace(fig, "Pareto front")
    assert list(front.x) == [100, 200, 300]
    assert list(front.y) == [0.90, 0.95, 0.97]
    assert list(front.customdata) == [1, 2, 4]
    assert "3 of 4 runs" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "size after compression (bits)"
    assert len(pareto_scatter(df.iloc[4:]).data) == 0
    assert fig.layout.legend.orientation is None  # two kinds of run: the legend stays at the side


def test_pareto_scatter_says_when_front_runs_repeat_a_point_and_moves_a_long_legend_below() -> None:
    df = pd.DataFrame({"id": range(6), "sampler": ["sa", "tabu", "sqa", "ga", "rl", "sa"],
                       "size_bits_after": [100, 100, 100, 200, 300, 400],
                       "accuracy_after": [0.9, 0.9, 0.9, 0.95, 0.8, 0.97]})
    fig = pareto_scatter(df)
    assert fig.layout.title.text.endswith("5 of 6 runs on the Pareto front (3 distinct)")
    assert fig.layout.legend.orientation == "h"


def test_sensitivity_heatmap() -> None:
    table = [
        {
            "name": "conv1",
            "params": 100,
            "options": [
                {
                    "option": "prune",
                    "distortion": 0.5,
                    "cost_bits": 0,
                    "kept_params": 0,
                    "energy": 0.5,
                },
                {
                    "option": 4,
                    "distortion": 0.1,
                    "cost_bits": 400,
                    "kept_params": 100,
                    "energy": 0.2,
                },
            ],
        },
        {
            "name": "fc",
            "params": 50,
            "options": [
                {
                    "option": 4,
                    "distortion": 0.05,
                    "cost_bits": 200,
                    "kept_params": 50,
                    "energy": 0.1,
                },
                {
                    "option": 8,
                    "distortion": 0.01,
                    "cost_bits": 400,
                    "kept_params": 50,
                    "energy": 0.3,
                },
            ],
        },
    ]
    fig = sensitivity_heatmap(table)
    hm = fig.data[0]
    assert list(hm.x) == ["prune", "4", "8"] and list(hm.y) == ["conv1", "fc"]
    z = np.array(hm.z, dtype=float)
    assert z[0, 1] == 0.1 and z[1, 2] == 0.01
    assert np.isnan(z[0, 2]) and np.isnan(z[1, 0])
    text = np.array(hm.text, dtype=object)
    assert (
        "unit: conv1" in text[0, 1]
        and "cost bits: 400" in text[0, 1]
        and "distortion: 0.1" in text[0, 1]
    )
    cost = sensitivity_heatmap(table, value="cost_bits", log_scale=True)
    assert np.array(cost.data[0].z, dtype=float)[0, 0] == 0.0
    assert "cost bits" in cost.data[0].colorbar.title.text


def test_palette_is_theme_neutral() -> None:
    # no near-white or near-black colours that vanish on one of the two themes
    for c in PALETTE:
        assert c.startswith("#") and len(c) == 7
        r, g, b = (int(c[i : i + 2], 16) for i in (1, 3, 5))
        lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
        assert 50 < lum < 220, c


def test_qubo_heatmap_colliding_names_fall_back_to_positions() -> None:
    bqm = dimod.BinaryQuadraticModel({1: 1.0, "1": 2.0}, {(1, "1"): 3.0}, 0.0, "BINARY")
    hm = qubo_heatmap(bqm).data[0]
    assert list(hm.x) == [0, 1]
    text = np.array(hm.text, dtype=object)
    assert text[0, 1] == "row: 1<br>column: 1"
    assert "%{text}" in hm.hovertemplate


def test_energy_histogram_with_all_reads_equal_uses_a_narrow_bin():
    fig = energy_histogram({"tabu": [0.25] * 50}, exact=0.25)
    bins = fig.data[0].xbins
    assert bins.size < 0.01
    lo, hi = fig.layout.xaxis.range
    assert lo < 0.25 < hi and hi - lo < 0.1


def test_pareto_scatter_keeps_accuracy_in_unit_range_and_widens_equal_sizes():
    df = pd.DataFrame({"id": [1, 2], "name": ["a", "b"], "sampler": ["sa", "tabu"],
                       "size_bits_after": [41344, 41344], "accuracy_after": [0.99, 0.99]})
    fig = pareto_scatter(df)
    assert fig.layout.yaxis.range[1] <= 1.01
    lo, hi = fig.layout.xaxis.range
    assert lo < 41344 < hi and hi - lo > 1000


def test_problem_graph_spreads_disconnected_onehot_cliques():
    """Without pairwise terms each unit is its own clique: components must not overlap."""
    bqm = dimod.BinaryQuadraticModel("BINARY")
    for unit in ("conv1", "conv2", "fc"):
        names = [f"{unit}@{k}" for k in (2, 4, 8)]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                bqm.add_quadratic(a, b, 1.0)
    fig = problem_graph(bqm)
    xs, ys, labels = [], [], []
    for trace in fig.data:
        if trace.mode and "markers" in trace.mode and trace.customdata is not None:
            xs += list(trace.x)
            ys += list(trace.y)
            labels += list(trace.customdata)
    centre = {}
    for x, y, name in zip(xs, ys, labels):
        centre.setdefault(str(name).split("@")[0], []).append((x, y))
    means = {u: np.mean(p, axis=0) for u, p in centre.items()}
    assert len(means) == 3
    units = list(means)
    for i, a in enumerate(units):
        for b in units[i + 1:]:
            assert np.linalg.norm(means[a] - means[b]) > 1.0


@pytest.mark.parametrize("log_scale", [False, True])
def test_aggregated_sums_of_magnitudes_use_a_scale_from_zero_and_readable_ticks(log_scale) -> None:
    rng = np.random.default_rng(0)
    n = 512  # a digits-cnn fc channel QUBO is this size and dense
    rows, cols = np.triu_indices(n, 1)
    bqm = dimod.BinaryQuadraticModel.from_numpy_vectors(
        rng.normal(size=n), (rows, cols, rng.normal(size=rows.size)), 0.0, "BINARY"
    )
    fig = qubo_heatmap(bqm, log_scale=log_scale)
    hm = fig.data[0]
    assert hm.zmin == 0.0 and hm.zmid is None and "sum of |coefficients|" in hm.colorbar.title.text
    if log_scale:
        assert all(v >= 0 for v in hm.colorbar.tickvals)
    assert len(fig.layout.xaxis.ticktext) <= 16  # "500…501"-style bin names, not a smear of 52
    assert fig.layout.title.text.index("<br>") < 80  # the long aggregation note is a subtitle


def test_split_by_feasibility_keeps_every_read_once_with_its_label() -> None:
    from core.viz import split_by_feasibility

    report = {"sampler": "sa", "energies": [1.0, 2.0, 3.0, 4.0], "feasible_reads": [True, False, True, False]}
    assert split_by_feasibility(report) == {"sa, feasible": [1.0, 3.0], "sa, infeasible": [2.0, 4.0]}
    assert split_by_feasibility({**report, "feasible_reads": [True] * 4}) == {"sa, feasible": [1.0, 2.0, 3.0, 4.0]}
    assert split_by_feasibility({"sampler": "sa", "energies": [1.0]}) == {"sa": [1.0]}  # an older report
    fig = energy_histogram(split_by_feasibility(report), normalize=False)
    assert sorted(t.name for t in fig.data if t.type == "histogram" or t.type == "bar")[:2] == [
        "sa, feasible", "sa, infeasible"]


@pytest.mark.parametrize("max_abs, threshold", [(1.0, 1e-3), (1.0, 1e-4), (5.0, 0.5), (1e6, 1.0), (0.3, 2e-4)])
def test_symlog_colour_bar_labels_keep_apart(max_abs, threshold):
    """Powers of ten below the threshold sit next to 0 on the bar; their labels must not overprint it."""
    from core.viz._common import symlog_ticks

    values, labels = symlog_ticks(max_abs, threshold)
    assert "0" in labels and len(values) == len(labels) >= 3
    gaps = np.diff(values)
    assert (gaps >= 0.08 * max(values) - 1e-12).all(), list(zip(labels, values, strict=True))


@given(st.floats(min_value=-1e99, max_value=1e99).filter(lambda v: v == 0 or abs(v) >= 1e-99))
def test_short_numbers_fit_a_metric_tile_and_stay_close(value):
    from ui.common import short_number

    text = short_number(value)
    assert len(text) <= 9  # "-6.02e-15" at worst; "6.02e-5" and "0.1365" typically
    assert float(text) == pytest.approx(value, rel=6e-3, abs=0)


def test_short_number_examples():
    from ui.common import short_number

    assert [short_number(v) for v in (0.136512, 6.01711e-05, -0.0970499, 0.0, 12345.6, 2.9e6)] == [
        "0.1365", "6.02e-5", "-0.09705", "0", "1.23e4", "2.90e6"]
    assert [short_number(v) for v in (9999.5, 0.00099996, math.inf, math.nan)] == ["1.00e4", "0.001", "inf", "nan"]
