"""Home: what the lab does and the workflow, in a few sentences."""

import streamlit as st

st.title("QUBO Compression Lab")
st.markdown(
    "Explore **neural-network compression written as a QUBO** (quadratic unconstrained binary optimization) "
    "and solved by simulated annealing, classical baselines, a simulated quantum annealer, or a real D-Wave QPU "
    "if you have a token. Every annealer result is shown next to an exact or classical reference wherever one "
    "can be computed, so you can judge for yourself whether quantum optimization helps."
)

st.graphviz_chart(
    """
    digraph workflow {
      rankdir=LR; bgcolor="transparent";
      node [shape=box, style="rounded,filled", fillcolor="#4C78A8", fontcolor="white", fontname="sans-serif"];
      edge [color="#888888"];
      model [label="Model\\npick or upload a CNN"];
      formulate [label="Formulate\\nsensitivities -> QUBO"];
      embed [label="Embed\\nminor embedding on a QPU graph"];
      solve [label="Solve\\nannealers vs exact"];
      compare [label="Compare\\naccuracy, size, speed"];
      model -> formulate -> embed -> solve -> compare;
    }
    """,
    width="stretch",
)

st.markdown(
    """
1. **Model**: choose a built-in digits network, a torchvision architecture, or upload your own; see its
   layers, size, accuracy and latency.
2. **Formulate**: measure how much each layer suffers at each precision (prune, 2/4/8 bits, keep) and turn the
   choices into a QUBO with bit-width and sparsity penalties or a size budget. See it as a heatmap.
3. **Embed**: map the QUBO onto a D-Wave Pegasus, Zephyr or Chimera qubit graph and inspect the chains.
4. **Solve**: run simulated annealing, tabu, simulated quantum annealing, genetic or RL baselines, a simulated
   QPU, or a real one; compare the energy distribution with the exact optimum.
5. **Compare**: every run is saved; overlay energy distributions and trade accuracy against size.
"""
)
c1, c2 = st.columns(2)
c1.page_link("app_pages/model.py", label="Start: choose a model", icon=":material/arrow_forward:")
c2.page_link("app_pages/compare.py", label="See saved runs", icon=":material/history:")
st.caption(
    "The simulated QPU reproduces minor embedding and chain breaks, not quantum physics. "
    "Nothing here claims a quantum advantage that the numbers on the page do not show."
)
