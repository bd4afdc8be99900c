"""Formulate: measure sensitivities, set penalties, and see the QUBO."""

import json

import streamlit as st

from core.runs import IMPLEMENTED_METHODS, METHODS
from core.viz import qubo_heatmap
from ui.common import guarded, human_bits, page_intro, require_workspace
from ui.pipeline import formulation_for, qubo_download

page_intro(
    "Formulate",
    "Each layer (unit) gets one option: prune, a bit width, or keep fp32. The QUBO's energy adds the measured "
    "loss increase of each choice, a bit-width penalty and a sparsity penalty, and a one-hot penalty that makes "
    "every unit take exactly one option. Move the sliders: the QUBO is rebuilt from cached sensitivities.",
)
ws = require_workspace()

settings, results = st.columns([1, 2], gap="large")
with settings:
    st.subheader("Settings")
    method = st.selectbox("Method", METHODS, key="method",
                          format_func=lambda m: m if m in IMPLEMENTED_METHODS else f"{m} (coming soon)")
    options = st.multiselect("Options per unit", ["prune", 1, 2, 3, 4, 5, 6, 7, 8, "keep"],
                             default=["prune", 2, 4, 8, "keep"], key="options",
                             help="prune zeroes the unit; b bits quantizes weights symmetrically per output "
                                  "channel; keep leaves fp32. The final classifier is never pruned.")
    lambda_bits = st.slider("λ bits (size penalty)", 0.0, 5.0, 1.0, 0.05, key="lambda_bits",
                            help="Weight of the normalised size term: higher favours fewer bits.")
    lambda_sparsity = st.slider("λ sparsity", 0.0, 5.0, 0.0, 0.05, key="lambda_sparsity",
                                help="Weight of the fraction of parameters kept: higher favours pruning.")
    budget_mode = st.radio("Size budget", ["none", "ratio of fp32 size"], horizontal=True, key="budget_mode")
    budget_ratio, budget_encoding = None, "capacity"
    if budget_mode != "none":
        budget_ratio = st.slider("Keep at most this fraction of the fp32 size", 0.02, 1.0, 0.25, 0.01,
                                 key="budget_ratio")
        budget_encoding = st.radio(
            "Budget encoding", ["capacity", "slack"], horizontal=True, key="budget_encoding",
            help="capacity: bisect λ bits until the optimum fits (sparse QUBO, embeddable). slack: a quadratic "
                 "penalty with slack variables (exact but dense and hard for annealers).")
    groups = st.number_input("Channel groups per layer (fine-grained)", 1, 16, 1, key="groups")
    pairwise = st.toggle("Pairwise terms for neighbouring units", key="pairwise",
                         help="Measures joint minus individual loss increases: slower, more accurate.")
    sensitivity = st.selectbox("Sensitivity", ["measured", "hessian", "magnitude"], key="sensitivity",
                               help="measured: loss increase on calibration data. hessian: Hutchinson trace x "
                                    "quantization noise. magnitude: squared weight perturbation.")
    log_scale = st.toggle("Symmetric log colours", value=True, key="log_scale")

if method not in IMPLEMENTED_METHODS:
    with results:
        st.info(f"The **{method}** method is not available in this version yet; choose mixed-precision.")
    st.stop()

formulation_options = {
    "options": [o for o in options] or None,
    "lambda_bits": lambda_bits,
    "lambda_sparsity": lambda_sparsity,
    "budget_ratio": budget_ratio,
    "budget_encoding": budget_encoding,
    "groups": int(groups),
    "pairwise": pairwise,
    "sensitivity": sensitivity,
}

with results:
    formulation = guarded(formulation_for, ws, method, formulation_options, action="Building the QUBO")
    if formulation is None:
        formulation = st.session_state.get("formulation")
        if formulation is None:
            st.stop()
        st.caption("Showing the previous QUBO.")
    bqm = formulation.bqm
    n, m = bqm.num_variables, bqm.num_interactions
    density = 2 * m / (n * (n - 1)) if n > 1 else 0.0
    c = st.columns(4)
    c[0].metric("Variables", n)
    c[1].metric("Interactions", m)
    c[2].metric("Density", f"{density:.1%}")
    budget = formulation.tables.get("budget_bits")
    c[3].metric("Budget", human_bits(budget) if budget else "none")
    st.plotly_chart(qubo_heatmap(bqm, log_scale=log_scale), key="qubo_heatmap", width="stretch")
    st.markdown("**Distortion, cost and energy per unit and option**")
    rows = [
        {"unit": u["name"], "params": u["params"], "option": str(o["option"]), "distortion": o["distortion"],
         "cost (bits)": o["cost_bits"], "kept params": o["kept_params"], "energy": o["energy"]}
        for u in formulation.tables.get("units", []) for o in u["options"]
    ]
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"distortion": st.column_config.NumberColumn(format="%.4g"),
                                "energy": st.column_config.NumberColumn(format="%.4g")})
    st.download_button("Download BQM (JSON)", data=json.dumps(qubo_download(bqm)), file_name="bqm.json",
                       mime="application/json", key="download_bqm")
