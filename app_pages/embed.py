"""Embed: map the QUBO onto a QPU qubit graph and inspect the chains."""

import streamlit as st

from core.embedding import compute_chain_strength, find_embedding, qpu_graph
from core.inspect import INSPECTOR_APP_HINT, inspector_app_available, open_in_inspector, preview_inspector_data
from core.runs import MULTI_QUBO_METHODS
from core.viz import chain_length_histogram, embedding_view, embedding_view_from_inspector, problem_graph
from ui.common import guarded, page_intro, require_workspace
from ui.pipeline import keep_widget, remember_widgets, require_formulation

TOPOLOGY_LABELS = {
    "pegasus": "Pegasus (Advantage-like, P16)",
    "zephyr": "Zephyr (Advantage2-like, Z12)",
    "chimera": "Chimera (D-Wave 2000Q-like, C16)",
}

page_intro(
    "Embed",
    "A QPU's qubits are not all connected, so each logical variable becomes a *chain* of physical qubits held "
    "together by a strong coupling (the chain strength). Dense problems use the fast clique embedding; sparse "
    "ones the minorminer heuristic. Long chains break more often and cost qubits.",
)
require_workspace()
formulation = require_formulation()
if formulation.method in MULTI_QUBO_METHODS:
    where = ", ".join(f"{k} {formulation.params[k]}" for k in ("layer", "channel") if k in formulation.params)
    st.info(f"{formulation.method} solves many small QUBOs; this embeds the one shown on Formulate ({where}). A run "
            "on a QPU-like sampler embeds each batch of them in turn.", icon=":material/info:")



def preview_data(bqm, result, strength):
    """Inspector data of this embedding, computed once per embedding (not on every highlight)."""
    key = (id(result), strength)
    if st.session_state.get("inspector_key") != key:
        st.session_state["inspector_data"] = preview_inspector_data(bqm, result.embedding, result.topology,
                                                                    chain_strength=strength)
        st.session_state["inspector_key"] = key
    return st.session_state["inspector_data"]


KEPT = ("topology", "embed_method", "auto_chain_strength", "chain_strength", "embed_seed", "embed_zoom")
keep_widget(*KEPT)
settings, results = st.columns([1, 2], gap="large")
with settings:
    st.subheader("Settings")
    topology = st.selectbox("Topology", list(TOPOLOGY_LABELS), format_func=TOPOLOGY_LABELS.get, key="topology")
    method = st.radio("Embedding method", ["auto", "clique", "heuristic"], horizontal=True, key="embed_method",
                      help="auto: clique embedding for dense problems (fast, uniform chains), the heuristic "
                           "for sparse ones.")
    auto_strength = st.toggle("Automatic chain strength (uniform torque compensation)", value=True,
                              key="auto_chain_strength")
    strength = None
    if not auto_strength:
        strength = st.number_input("Chain strength", min_value=0.0, value=1.0, step=0.1, key="chain_strength")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="embed_seed")
    run = st.button("Embed", type="primary", key="embed_button", width="stretch")
remember_widgets(*KEPT)

if run:
    with results, st.spinner("Finding a minor embedding..."):
        result = guarded(find_embedding, formulation.bqm, topology, method, seed=int(seed), action="Embedding")
    if result is not None:
        st.session_state["embedding"] = result
        st.session_state["embedding_chain_strength"] = compute_chain_strength(
            formulation.bqm, result.embedding, strength)

with results:
    result = st.session_state.get("embedding")
    if result is None:
        st.info("Choose a topology and press **Embed**.")
        st.stop()
    c = st.columns(4)
    c[0].metric("Qubits used", f"{result.qubits_used:,}", help=f"of {result.qubits_available:,} available qubits")
    c[1].metric("Longest chain", result.max_chain_length)
    c[2].metric("Mean chain", f"{result.mean_chain_length:.2f}")
    c[3].metric("Embedding time", f"{result.time_s:.2f} s", help="cached" if result.from_cache else None)
    st.caption(
        f"{result.qubits_used:,} of {result.qubits_available:,} qubits on {TOPOLOGY_LABELS[result.topology]}, "
        f"{result.method} embedding, chain strength {st.session_state.get('embedding_chain_strength', 0):.3g}."
    )
    variables = list(result.embedding)
    names = ["(none)", *map(str, variables)]
    clicked = st.session_state.get("problem_graph")
    points = clicked.selection.points if clicked and clicked.selection else []
    picked = points[0].get("customdata") if points else None
    if picked in names and picked != st.session_state.get("last_graph_click"):
        # a new click on a logical variable selects its chain (the select box still works after it)
        st.session_state["highlight_var"] = st.session_state["last_graph_click"] = picked
    highlight = st.selectbox("Highlight the chain of", names, key="highlight_var",
                             help="Or click a variable in the logical problem graph.")
    chosen = next((v for v in variables if str(v) == highlight), None)
    zoom = st.toggle("Zoom to the used qubits", value=True, key="embed_zoom")
    inspected = guarded(preview_data, formulation.bqm, result, st.session_state.get("embedding_chain_strength"),
                        action="Preparing the inspector view")
    if inspected is not None:
        view = embedding_view_from_inspector(inspected, highlight_var=chosen, bqm=formulation.bqm, zoom=zoom)
        breaks = inspected.get("qcl", {}).get("preview_chain_break_fraction")
        st.caption("Drawn from dwave-inspector problem data of a 10-read simulated-QPU preview"
                   + ("" if breaks is None else f" (chain breaks in the preview: {breaks:.1%})") + ".")
        if inspector_app_available():
            if st.button("Open in D-Wave Inspector", key="open_inspector", icon=":material/open_in_new:",
                         help="D-Wave's own problem inspector, with this preview's problem, embedding and reads."):
                url = guarded(open_in_inspector, inspected, action="Opening D-Wave's Inspector")
                if url:
                    st.success(f"Opened in D-Wave's Inspector: {url}")
        else:
            st.caption(INSPECTOR_APP_HINT + " With it, an *Open in D-Wave Inspector* button appears here.")
    else:
        view = embedding_view(result.embedding, result.topology, qpu_graph(result.topology), highlight_var=chosen,
                              bqm=formulation.bqm, zoom=zoom)
    view.update_layout(height=620)
    st.plotly_chart(view, key="embedding_view", width="stretch")
    left, right = st.columns(2)
    left.plotly_chart(problem_graph(formulation.bqm, highlight=chosen, title="Logical problem graph"),
                      key="problem_graph", width="stretch", on_select="rerun", selection_mode="points")
    right.plotly_chart(chain_length_histogram(result.embedding), key="chain_hist", width="stretch")
