"""The physical side: a minor embedding drawn on the QPU's own layout, and chain lengths.

:func:`inspector_data` turns a logical BQM, its SampleSet and the embedding into
dwave-inspector's problem data (``dwave.inspector.adapters.from_bqm_sampleset``),
for the simulated QPU as well as the real one, and
:func:`embedding_view_from_inspector` draws the embedding from that data, so
both kinds of run share one view.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import dimod
import networkx as nx
import numpy as np
import plotly.graph_objects as go

from core.errors import InvalidInputError, UnavailableError
from core.viz._common import (
    FAINT,
    NEUTRAL,
    PALETTE,
    base_layout,
    empty_figure,
    line_segments,
    var_name,
)

Topology = Literal["pegasus", "zephyr", "chimera"]
TOPOLOGIES: tuple[str, ...] = ("pegasus", "zephyr", "chimera")
TOPOLOGY_NAMES = {"pegasus": "Pegasus", "zephyr": "Zephyr", "chimera": "Chimera"}
_SOLVER_DEFAULTS = {
    "default_annealing_time": 20.0,
    "default_programming_thermalization": 1000.0,
    "default_readout_thermalization": 0.0,
}


def _layout(topology: str, graph: nx.Graph) -> dict[int, np.ndarray]:
    import dwave.graphs as dg

    fn = {
        "pegasus": dg.pegasus_layout,
        "zephyr": dg.zephyr_layout,
        "chimera": dg.chimera_layout,
    }.get(topology)
    if fn is None:
        raise InvalidInputError(
            f"Unknown QPU topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}."
        )
    family = graph.graph.get("family")
    if family is not None and family != topology:
        raise InvalidInputError(
            f"The target graph is a {family} graph, not {topology}."
        )
    try:
        return fn(graph)
    except Exception as exc:
        raise InvalidInputError(
            f"Cannot lay out this target graph as {topology}: build it with dwave.graphs.{topology}_graph."
        ) from exc


def _line_trace(
    pairs: Sequence[tuple[int, int]],
    pos: Mapping[int, np.ndarray],
    *,
    color: str,
    width: float,
    **kwargs: Any,
) -> go.Scattergl:
    """One trace drawing the qubit pairs as segments (gaps between them), no hover."""
    xs, ys = line_segments(pairs, pos)
    return go.Scattergl(
        x=xs,
        y=ys,
        mode="lines",
        line={"color": color, "width": width},
        hoverinfo="skip",
        **kwargs,
    )


def _qubit_trace(
    qubits: Sequence[int], pos: Mapping[int, np.ndarray], **kwargs: Any
) -> go.Scattergl:
    """One trace of qubit markers, hovering their ``text``."""
    return go.Scattergl(
        x=[float(pos[q][0]) for q in qubits],
        y=[float(pos[q][1]) for q in qubits],
        mode="markers",
        hovertemplate="%{text}<extra></extra>",
        **kwargs,
    )


def embedding_view(
    embedding: Mapping[Hashable, Sequence[int]],
    topology: Topology | str,
    target_graph: nx.Graph,
    *,
    highlight_var: Hashable | None = None,
    bqm: dimod.BinaryQuadraticModel | None = None,
    title: str | None = None,
    zoom: bool = False,
) -> go.Figure:
    """A minor embedding drawn on the QPU layout of ``dwave.graphs``.

    ``zoom`` frames the used qubits (with a margin) instead of the whole QPU,
    which matters when a small problem uses a few dozen of thousands of qubits.

    Traces (in order): ``unused qubits`` (one faint scattergl trace), chain
    edges (scattergl line traces with None separators, one per palette colour),
    optionally ``logical couplers`` (physical couplers that carry an
    interaction of ``bqm``), ``used qubits`` (one scattergl trace coloured by
    the logical variable each qubit carries; hover shows qubit, variable and
    chain length; ``customdata`` is the variable name) and, when
    ``highlight_var`` is given, ``highlighted chain`` (enlarged markers and
    thick edges; the other chains are dimmed).
    """
    if topology not in TOPOLOGIES:
        raise InvalidInputError(
            f"Unknown QPU topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}."
        )
    pos = _layout(topology, target_graph)
    missing = {q for chain in embedding.values() for q in chain if q not in pos}
    if missing:
        raise InvalidInputError(
            f"The embedding uses {len(missing)} qubit(s) that are not in the target graph "
            f"(e.g. {sorted(missing)[:5]})."
        )
    variables = list(embedding)
    var_index = {v: i for i, v in enumerate(variables)}
    carrier: dict[int, Hashable] = {}
    for v, chain in embedding.items():
        for q in chain:
            if q in carrier:
                raise InvalidInputError(
                    f"Qubit {q} belongs to two chains ({carrier[q]!r} and {v!r})."
                )
            carrier[q] = v
    used = [q for v in variables for q in embedding[v]]
    unused = [q for q in target_graph.nodes if q not in carrier]
    highlighted = highlight_var is not None and highlight_var in embedding
    dim = 0.35 if highlighted else 1.0

    fig = go.Figure()
    fig.add_trace(
        _qubit_trace(
            unused,
            pos,
            marker={"size": 3, "color": FAINT},
            name="unused qubits",
            text=[f"qubit {q} (unused)" for q in unused],
        )
    )
    # chain edges grouped by the colour of their variable: bounded number of traces
    by_colour: dict[int, list[tuple[int, int]]] = {}
    for v, chain in embedding.items():
        qs = set(chain)
        edges = (
            [(a, b) for a, b in target_graph.subgraph(qs).edges] if len(qs) > 1 else []
        )
        by_colour.setdefault(var_index[v] % len(PALETTE), []).extend(edges)
    for c, edges in sorted(by_colour.items()):
        if not edges:
            continue
        fig.add_trace(
            _line_trace(
                edges,
                pos,
                color=PALETTE[c],
                width=2,
                opacity=dim,
                name="chain edges",
                legendgroup="chains",
                showlegend=c == min(k for k, e in by_colour.items() if e),
            )
        )
    if bqm is not None:
        couplers = []
        for u, v in bqm.quadratic:
            if u in embedding and v in embedding:
                cu, cv = set(embedding[u]), set(embedding[v])
                couplers += [(a, b) for a in cu for b in target_graph.adj[a] if b in cv]
        if couplers:
            fig.add_trace(
                _line_trace(
                    couplers,
                    pos,
                    color=NEUTRAL,
                    width=0.7,
                    opacity=0.5 * dim,
                    name="logical couplers",
                )
            )
    chain_len = {v: len(embedding[v]) for v in variables}
    fig.add_trace(
        _qubit_trace(
            used,
            pos,
            marker={
                "size": 7,
                "color": [PALETTE[var_index[carrier[q]] % len(PALETTE)] for q in used],
                "opacity": dim,
                "line": {"width": 0.5, "color": NEUTRAL},
            },
            name="used qubits",
            text=[
                f"qubit {q}<br>variable: {var_name(carrier[q])}<br>chain length: {chain_len[carrier[q]]}"
                for q in used
            ],
            customdata=[var_name(carrier[q]) for q in used],
        )
    )
    if highlighted:
        chain = list(embedding[highlight_var])
        edges = list(target_graph.subgraph(chain).edges)
        if edges:
            fig.add_trace(
                _line_trace(
                    edges,
                    pos,
                    color="#EF553B",
                    width=5,
                    name="highlighted chain edges",
                    showlegend=False,
                )
            )
        fig.add_trace(
            _qubit_trace(
                chain,
                pos,
                marker={
                    "size": 13,
                    "color": "#EF553B",
                    "line": {"width": 2, "color": NEUTRAL},
                },
                name="highlighted chain",
                text=[
                    f"qubit {q}<br>variable: {var_name(highlight_var)}<br>chain length: {len(chain)}"
                    for q in chain
                ],
                customdata=[var_name(highlight_var)] * len(chain),
            )
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    if zoom and used:
        xy = np.array([pos[q] for q in used], dtype=float)
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        pad = 0.15 * max(float((hi - lo).max()), 0.02)
        fig.update_xaxes(range=[lo[0] - pad, hi[0] + pad])
        fig.update_yaxes(range=[lo[1] - pad, hi[1] + pad])
    lengths = [len(c) for c in embedding.values()]
    summary = (
        f"{len(used)} of {target_graph.number_of_nodes()} qubits used, "
        f"{len(variables)} variables, max chain {max(lengths) if lengths else 0}"
    )
    name = TOPOLOGY_NAMES[topology]
    return base_layout(
        fig,
        title or f"Embedding on {name}<br><sup>{summary}</sup>",
        hovermode="closest",
        legend={"itemsizing": "constant"},
    )


def chain_length_histogram(
    embedding: Mapping[Hashable, Sequence[int]], *, title: str = "Chain lengths"
) -> go.Figure:
    """Bar chart of how many logical variables have each chain length."""
    if not embedding:
        return empty_figure(title, "No embedding yet.")
    counts = Counter(len(chain) for chain in embedding.values())
    lengths = list(range(1, max(counts) + 1))
    fig = go.Figure(
        go.Bar(
            x=lengths,
            y=[counts.get(k, 0) for k in lengths],
            marker={"color": PALETTE[0]},
            name="variables",
            hovertemplate="chain length %{x}: %{y} variables<extra></extra>",
        )
    )
    values = np.array([len(c) for c in embedding.values()])
    fig.update_xaxes(title_text="chain length (qubits per variable)", dtick=1)
    fig.update_yaxes(title_text="variables")
    return base_layout(
        fig,
        f"{title}<br><sup>mean {values.mean():.2f}, max {values.max()}, {int(values.sum())} qubits</sup>",
        bargap=0.15,
    )


# ----------------------------------------------------------------------------- inspector data


def _target_graph(
    topology: str,
    shape: Sequence[int],
    qubits: Sequence[int] | None = None,
    couplers: Sequence[Sequence[int]] | None = None,
) -> nx.Graph:
    import dwave.graphs as dg

    kw: dict[str, Any] = {}
    if qubits is not None:
        kw["node_list"] = list(qubits)
    if couplers is not None:
        kw["edge_list"] = [tuple(c) for c in couplers]
    if topology == "pegasus":
        return dg.pegasus_graph(int(shape[0]), **kw)
    if topology == "zephyr":
        return dg.zephyr_graph(
            int(shape[0]), int(shape[1]) if len(shape) > 1 else 4, **kw
        )
    if topology == "chimera":
        m = int(shape[0])
        n = int(shape[1]) if len(shape) > 1 else m
        t = int(shape[2]) if len(shape) > 2 else 4
        return dg.chimera_graph(m, n, t, **kw)
    raise InvalidInputError(
        f"Unknown QPU topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}."
    )


def target_graph_from_properties(properties: Mapping[str, Any]) -> nx.Graph:
    """The working graph (with ``dwave.graphs`` coordinates) of a QPU from its solver properties."""
    topo = properties.get("topology") or {}
    return _target_graph(
        str(topo.get("type")),
        list(topo.get("shape") or []),
        properties.get("qubits"),
        properties.get("couplers"),
    )


def _solver_from_properties(properties: Mapping[str, Any]) -> Any:
    from dwave.cloud.solver import StructuredSolver
    from dwave.cloud.testing.mocks import structured_solver_data

    props = {k: v for k, v in dict(properties).items() if k != "anneal_offset_ranges"}
    for k, v in _SOLVER_DEFAULTS.items():
        props.setdefault(k, v)
    props.setdefault("supported_problem_types", ["ising", "qubo"])
    props.setdefault("parameters", {"num_reads": "Number of samples to return."})
    topo = props.get("topology") or {}
    name = f"qcl-simulated-{topo.get('type', 'qpu')}"
    data = structured_solver_data(
        name=name,
        graph_id=name,
        status="ONLINE",
        avg_load=0.0,
        description="Simulated QPU (QUBO Compression Lab)",
        properties=props,
        qubits=list(props["qubits"]),
        couplers=[list(c) for c in props["couplers"]],
    )
    return StructuredSolver(client=None, data=data)


def _solver_properties_for(
    topology: str, shape: Sequence[int] | None, target_graph: nx.Graph | None
) -> dict[str, Any]:
    if target_graph is not None:
        g = target_graph
        family = g.graph.get("family", topology)
        if family != topology:
            raise InvalidInputError(
                f"The target graph is a {family} graph, not {topology}."
            )
        if topology == "pegasus":
            shape = [g.graph["rows"]]
        elif topology == "zephyr":
            shape = [g.graph["rows"], g.graph["tile"]]
        else:
            shape = [g.graph["rows"], g.graph["columns"], g.graph["tile"]]
        qubits = sorted(g.nodes)
        couplers = sorted(sorted(e) for e in g.edges)
        props: dict[str, Any] = {
            "topology": {"type": topology, "shape": list(shape)},
            "qubits": qubits,
            "couplers": couplers,
        }
        if topology == "pegasus":
            props["num_qubits"] = 24 * shape[0] * (shape[0] - 1)
        else:
            props["num_qubits"] = len(qubits)
        return props
    from dwave.cloud.testing import mocks

    if shape is None:
        shape = {"pegasus": [16], "zephyr": [12, 4], "chimera": [16, 16, 4]}[topology]
    if topology == "pegasus":
        data = mocks.qpu_pegasus_solver_data(int(shape[0]))
    elif topology == "zephyr":
        data = mocks.qpu_zephyr_solver_data(
            int(shape[0]), int(shape[1]) if len(shape) > 1 else 4
        )
    else:
        data = mocks.qpu_chimera_solver_data(*[int(s) for s in shape])
    return dict(data["properties"])


class _SolverHolder(dimod.Sampler):
    """Just enough of a dimod sampler for the inspector adapter to find ``.solver``."""

    def __init__(self, solver: Any) -> None:
        self.solver = solver

    @property
    def parameters(self) -> dict[str, Any]:
        return {}

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.solver.properties)

    def sample(
        self, bqm: dimod.BinaryQuadraticModel, **parameters: Any
    ) -> dimod.SampleSet:
        raise NotImplementedError(
            "placeholder sampler; used only to build inspector data"
        )


def _find_solver(sampler: Any) -> tuple[Any, Mapping[str, Any] | None]:
    """(cloud solver, QPU-like properties) of a sampler or the first child that has them."""
    props = getattr(sampler, "properties", None)
    structured = (
        props
        if isinstance(props, Mapping) and "qubits" in props and "topology" in props
        else None
    )
    solver = getattr(sampler, "solver", None)
    if solver is not None and hasattr(solver, "nodes"):
        return solver, structured
    for child in getattr(sampler, "children", None) or []:
        s, p = _find_solver(child)
        if s is not None or p is not None:
            return s, p if structured is None else structured
    return None, structured


def inspector_data(
    bqm: dimod.BinaryQuadraticModel,
    sampleset: dimod.SampleSet,
    embedding: Mapping[Hashable, Sequence[int]],
    topology: Topology | str,
    *,
    shape: Sequence[int] | None = None,
    target_graph: nx.Graph | None = None,
    solver_properties: Mapping[str, Any] | None = None,
    sampler: dimod.Sampler | None = None,
    chain_strength: float | None = None,
    chain_break_method: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """dwave-inspector problem data for a logical BQM, its SampleSet and embedding.

    The QPU is, in order of preference: ``sampler`` (a real ``DWaveSampler``
    or a composite around it: its cloud solver is used as is), a solver built
    from ``solver_properties`` (e.g. ``MockDWaveSampler(...).properties``), from
    ``target_graph``, or dwave-cloud-client's mock solver data for ``topology``
    and ``shape``. The result is ``from_bqm_sampleset``'s dict plus a
    JSON-ready ``"qcl"`` entry (topology, shape, qubits, couplers, embedding
    with the original variable labels) so that it can be stored and drawn
    without the solver object. Note that the adapter cannot know individual
    qubit values (it sees unembedded samples): it never shows broken chains.
    """
    from dwave.inspector.adapters import from_bqm_sampleset

    if topology not in TOPOLOGIES:
        raise InvalidInputError(
            f"Unknown QPU topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}."
        )
    missing = [v for v in bqm.variables if v not in embedding]
    if missing:
        raise InvalidInputError(
            f"The embedding has no chain for {len(missing)} variable(s), e.g. {missing[:3]!r}."
        )
    if set(sampleset.variables) != set(bqm.variables):
        raise InvalidInputError(
            "The samples are over different variables than the QUBO (was the sample set unembedded?)."
        )
    emb = {v: [int(q) for q in embedding[v]] for v in sampleset.variables}
    if chain_strength is None:
        from dwave.embedding.chain_strength import uniform_torque_compensation

        chain_strength = float(uniform_torque_compensation(bqm))

    solver = None
    if sampler is not None:
        holder: dimod.Sampler = sampler
        solver, structured = _find_solver(sampler)
        if solver is not None:
            topo = (solver.properties.get("topology") or {}).get("type")
            if topo != topology:
                raise InvalidInputError(
                    f"The sampler's QPU has a {topo} topology, not {topology}."
                )
        elif solver_properties is None and structured is not None:
            # a simulated QPU (e.g. MockDWaveSampler), possibly inside composites
            solver_properties = structured
    if solver is None:
        try:
            props = (
                dict(solver_properties)
                if solver_properties is not None
                else _solver_properties_for(topology, shape, target_graph)
            )
            if (props.get("topology") or {}).get("type") != topology:
                raise InvalidInputError(
                    f"The solver properties describe a {props.get('topology')} QPU, not {topology}."
                )
            solver = _solver_from_properties(props)
        except ImportError as exc:
            raise UnavailableError(
                "The D-Wave cloud client is needed to build inspector data."
            ) from exc
        holder = _SolverHolder(solver)

    used = {q for chain in emb.values() for q in chain}
    outside = used - set(solver.nodes)
    if outside:
        raise InvalidInputError(
            f"The embedding uses {len(outside)} qubit(s) the QPU does not have (e.g. {sorted(outside)[:5]})."
        )
    context = {
        "embedding": emb,
        "chain_strength": chain_strength,
        "chain_break_method": chain_break_method,
    }
    try:
        data = from_bqm_sampleset(
            bqm,
            sampleset,
            holder,
            embedding_context=context,
            params=dict(params) if params else None,
        )
    except (ValueError, TypeError, KeyError, AssertionError) as exc:
        raise InvalidInputError(
            f"dwave-inspector could not read this run: {exc}"
        ) from exc
    topo = dict(solver.properties["topology"])
    data["qcl"] = {
        "topology": topo["type"],
        "shape": list(topo["shape"]),
        "qubits": list(map(int, solver.properties["qubits"])),
        "couplers": [list(map(int, c)) for c in solver.properties["couplers"]],
        "embedding": [[var_name(v), list(chain)] for v, chain in emb.items()],
        "chain_strength": chain_strength,
    }
    return data


def inspector_embedding(data: Mapping[str, Any]) -> dict[Hashable, list[int]]:
    """The embedding in inspector data, keyed by the original logical variables where known."""
    raw = data.get("data", {}).get("data", {}).get("embedding")
    if raw is None:
        raise InvalidInputError("This inspector data has no embedding.")
    labels = data.get("unembedded_answer", {}).get("active_variables") or []
    by_str: dict[str, Hashable] = {}
    for v in labels:
        v = (
            tuple(v) if isinstance(v, list) else v
        )  # tuples come back as lists from JSON
        by_str.setdefault(str(v), v)
    return {by_str.get(str(k), k): [int(q) for q in chain] for k, chain in raw.items()}


def embedding_view_from_inspector(
    data: Mapping[str, Any],
    *,
    highlight_var: Hashable | None = None,
    bqm: dimod.BinaryQuadraticModel | None = None,
    zoom: bool = False,
    title: str | None = None,
) -> go.Figure:
    """:func:`embedding_view` built from dwave-inspector problem data.

    Works with ``from_bqm_sampleset`` output for real runs (topology and
    working graph from ``data["rel"]["solver"]``) and with
    :func:`inspector_data` output, also after a JSON round trip (``data["qcl"]``).
    """
    solver = (data.get("rel") or {}).get("solver")
    if solver is not None:
        props = solver.properties
        topo = dict(props.get("topology") or {})
        graph = _target_graph(
            str(topo.get("type")),
            list(topo.get("shape") or []),
            props.get("qubits"),
            props.get("couplers"),
        )
    elif "qcl" in data:
        q = data["qcl"]
        topo = {"type": q["topology"], "shape": q["shape"]}
        graph = _target_graph(q["topology"], q["shape"], q["qubits"], q["couplers"])
    else:
        raise InvalidInputError("This inspector data does not say which QPU it ran on.")
    embedding = inspector_embedding(data)
    return embedding_view(
        embedding,
        str(topo["type"]),
        graph,
        highlight_var=highlight_var,
        bqm=bqm,
        title=title,
        zoom=zoom,
    )
