"""Formulate: measure sensitivities, set penalties, and see the QUBO."""

import json

import streamlit as st

from core.formulations.adaround import MAX_FISHER_GRAM_BYTES
from core.formulations.filter_pruning import DEFAULT_IMPORTANCE, DEFAULT_MU
from core.formulations.mixed_precision import QPU_RELATIVE_PRECISION, slack_budget
from core.methods.adaround import (
    DEFAULT_LAYERS_BUDGET_S,
    ENERGY_MEANING,
    RELAXATION_ITERATIONS,
    RUN_TARGETS,
    TARGET_LABELS,
    default_layers,
    fisher_cost,
    quantizable_layers,
    workload,
)
from core.methods.filter_pruning import kept_per_layer, prunable_layers
from core.runs import IMPLEMENTED_METHODS, METHODS
from core.sensitivity.filters import IMPORTANCE_KINDS
from core.viz import kept_filters_map, layer_error_bars, qubo_heatmap
from ui.common import guarded, human_bits, human_duration, page_intro, require_workspace
from ui.pipeline import (
    filter_stats_for,
    formulation_for,
    keep_widget,
    method_report,
    qubo_download,
    remember_widgets,
)
from ui.state import forget_other_method

page_intro(
    "Formulate",
    "Turn a compression choice into a QUBO and look at it. mixed-precision: each layer (unit) gets one option "
    "(prune, a bit width, or keep fp32); the energy adds the measured loss increase of each choice, bit-width and "
    "sparsity penalties, and a one-hot penalty so every unit takes exactly one option. adaround: one QUBO per output "
    "channel, rounding each weight down or up. filter-pruning: one QUBO per conv layer, choosing the filters to "
    "keep. The last two solve many small QUBOs; here you inspect one of them.",
)
ws = require_workspace()
KEPT = ("method", "log_scale", "options", "lambda_bits", "lambda_sparsity", "budget_mode", "budget_ratio",
        "budget_encoding", "groups", "pairwise", "sensitivity", "ar_bits", "ar_scale", "ar_target", "ar_layers",
        "ar_layer", "ar_channel", "ar_relaxation", "fp_sparsity", "fp_importance", "fp_mu", "fp_layer", "fp_refine", "fp_finetune")
keep_widget(*KEPT)

SOURCES = {
    "mixed-precision": "“Is Quantum Optimization Ready? An Effort Towards Neural Network Compression using Adiabatic "
                       "Quantum Computing” (2025); penalty and slack encodings as in A. Lucas, “Ising formulations of "
                       "many NP problems”, Frontiers in Physics (2014).",
    "adaround": "“Optimization of the quantization of dense neural networks from an exact QUBO formulation” (2025), "
                "after AdaRound: M. Nagel et al., “Up or Down? Adaptive Rounding for Post-Training Quantization”, "
                "ICML 2020.",
    "filter-pruning": "“Neural Network Pruning via QUBO Optimization” (hybrid QUBO, 2026); Taylor importance after "
                      "P. Molchanov et al., “Importance Estimation for Neural Network Pruning”, CVPR 2019; the "
                      "Fisher matrix of filter masks after W. Kwon et al., “A Fast Post-Training Pruning Framework "
                      "for Transformers”, NeurIPS 2022.",
}

settings, results = st.columns([1, 2], gap="large")
with settings:
    st.subheader("Settings")
    method = st.selectbox("Method", METHODS, key="method",
                          format_func=lambda m: m if m in IMPLEMENTED_METHODS else f"{m} (coming soon)")
    remember_widgets("method")  # sections may return before they remember their own widgets
    if method in ("adaround", "filter-pruning"):
        log_scale = st.toggle("Symmetric log colours", value=True, key="log_scale")
    if method in SOURCES:
        st.caption(f"Sources: {SOURCES[method]}")
forget_other_method(method)


def subproblem_metrics(bqm, variables_help: str, *extra: tuple[str, object, str | None]) -> None:
    """Variables and interactions of the shown subproblem, then ``(label, value, help)`` metrics."""
    columns = st.columns(2 + len(extra))
    columns[0].metric("Variables", bqm.num_variables, help=variables_help)
    columns[1].metric("Interactions", bqm.num_interactions)
    for column, (label, value, help_text) in zip(columns[2:], extra, strict=True):
        column.metric(label, value, help=help_text)


def workload_note(quantized: list[str], left_out: int, *, relaxation: bool, target: str) -> None:
    """Roughly how long sa samples the chosen layers (and the relaxation baseline takes, and the Fisher
    objective's matrices): a caption, or a warning when it is long."""
    load = workload(ws.model, quantized)
    baseline = (f", and roughly {human_duration(load.relaxation_seconds())} for the AdaRound-relaxation baseline"
                if relaxation else "")
    estimate = (f"{len(load.sizes)} layer(s), {load.couplers:,} couplers over their channel QUBOs: roughly "
                f"{human_duration(load.seconds)} of sa sampling at 4 reads on this machine{baseline}.")
    if target == "fisher" and quantized:
        cost = fisher_cost(ws.model, ws.calibration.images, quantized)
        estimate += (f" The Fisher objective adds {human_bits(8 * cost.bytes)} of Gram matrices (at most "
                     f"{human_bits(8 * MAX_FISHER_GRAM_BYTES)}) and roughly {human_duration(cost.seconds)} to build "
                     "them.")
    if load.is_long and load.largest is not None:
        big = load.largest
        st.warning(f"{estimate} The largest is {big.layer} ({big.channels} channels x {big.weights_per_channel} "
                   f"weights, {human_duration(big.sa_seconds())}).", icon=":material/hourglass_top:")
    else:
        st.caption(estimate + (f" {left_out} larger layer(s) are left out by default." if left_out else ""))


def adaround_section() -> None:
    """F3: one output channel's rounding QUBO, and the per-layer errors of the last run."""
    with settings:
        names = quantizable_layers(ws.model)
        bits = st.slider("Bits per weight", 1, 8, 4, key="ar_bits",
                         help="The chosen layers below are rounded to this many bits, with one fp32 scale per "
                              "output channel (biases stay fp32). At 2 bits the grid is ternary {-s, 0, s}; "
                              "at 1 bit it is {-s, s}.")
        scale = st.selectbox("Scale", ["minmax", "mse"], key="ar_scale",
                             help="Per-output-channel scale, used by the QUBO and by round-to-nearest alike: min-max, or the "
                                  "MSE-optimal search. At 2-3 bits min-max makes round-to-nearest a weak baseline; "
                                  "mse is the fairer comparison.")
        target = st.selectbox("Objective", list(RUN_TARGETS), key="ar_target", format_func=TARGET_LABELS.get,
                              help="What each channel's QUBO minimises. Output error: the layer's squared output "
                                   "error, AdaRound's objective. Fisher-weighted: the same error with every output "
                                   "weighted by how much it moves the model's predictions (the Fisher information, "
                                   "no labels needed): a diagonal second-order estimate of the loss increase. At 1 bit "
                                   "it keeps accuracy at or above round-to-nearest's where plain output error loses "
                                   "it; from 2 bits up the two are alike. It stores one Gram matrix per output "
                                   "channel (layers needing over 1 GiB of them together are refused) and costs "
                                   "up to that many times the plain one to build.")
        defaults = default_layers(ws.model)
        quantized = st.multiselect("Layers to quantize", names, default=defaults, key="ar_layers",
                                   help="The others stay float. Chosen by default: the smallest layers up to about "
                                        f"{DEFAULT_LAYERS_BUDGET_S:.0f} s of sa in all. A QPU holds only small fully "
                                        "connected problems (about 180 variables on Pegasus), so layers with many "
                                        "weights per output channel need a classical sampler.")
        if not quantized:
            st.warning("Choose at least one layer to quantize.", icon=":material/warning:")
        relaxation = st.toggle("Compare with AdaRound's continuous relaxation", value=True, key="ar_relaxation",
                               help="The classical solver of the same objective (Nagel et al. 2020), run after the "
                                    f"sampler: {RELAXATION_ITERATIONS:,} Adam steps per layer, twice (on the sampler's "
                                    "channel problems, and rounding its own model).")
        workload_note(quantized, len(names) - len(defaults), relaxation=relaxation, target=target)
        layer = st.selectbox("Layer", names, key="ar_layer", help="The layer whose channel QUBO is shown.")
        out_channels = int(ws.model.get_submodule(layer).weight.shape[0])
        if st.session_state.get("ar_channel", 0) >= out_channels:
            st.session_state["ar_channel"] = 0
        channel = st.selectbox("Output channel", list(range(out_channels)), key="ar_channel")
    remember_widgets(*KEPT)
    st.session_state["method_options"] = {
        "method": method, "options": {"bits": bits, "scale": scale, "target": target, "layers": quantized,
                                      "relaxation_iterations": RELAXATION_ITERATIONS if relaxation else 0},
    }
    with results:
        formulation = guarded(formulation_for, ws, method,
                              {"layer": layer, "channel": int(channel), "bits": bits, "scale": scale,
                               "target": target},
                              action="Building the channel QUBO")
        if formulation is None:
            return
        bqm = formulation.bqm
        subproblem_metrics(bqm, "free weight positions (clipped ones are fixed)",
                           ("Weights per channel", formulation.params["f"], None),
                           ("RTN energy", f"{formulation.tables['rtn_energy']:.4g}",
                            f"round-to-nearest's {ENERGY_MEANING[target]} on this channel (the QUBO's energy there)"))
        fixed = formulation.tables.get("fixed", [])
        st.caption(f"{layer} output channel {channel}: energy = {ENERGY_MEANING[target]} over "
                   f"{formulation.params['rows']} calibration rows when each weight is rounded down (0) or up (1)."
                   + (f" Weight position(s) {', '.join(map(str, fixed))} sit at the grid's edge, so clipping fixes "
                      "them and they are not variables." if fixed else ""))
        st.plotly_chart(qubo_heatmap(bqm, log_scale=log_scale), key="qubo_heatmap", width="stretch")
        report = method_report(method)
        if report is None:
            st.info("Run adaround on the **Solve** page to see the per-layer error, QUBO vs round-to-nearest.")
        else:
            st.plotly_chart(layer_error_bars(report["layers"],
                                             title=f"Output error per layer at {report['params']['bits']} bits"),
                            key="layer_errors", width="stretch")
        st.download_button("Download BQM (JSON)", data=json.dumps(qubo_download(bqm)), file_name="bqm.json",
                           mime="application/json", key="download_bqm")


def filter_pruning_section() -> None:
    """F2: one conv layer's filter QUBO, and the kept filters of the last run."""
    names = prunable_layers(ws.model)
    if not names:
        with results:
            st.info("This model has no conv layers whose filters can be pruned.")
        return
    with settings:
        sparsity = st.slider("Filter sparsity (fraction removed)", 0.0, 0.95, 0.5, 0.05, key="fp_sparsity")
        importance = st.selectbox("Importance", list(IMPORTANCE_KINDS), key="fp_importance",
                                  index=IMPORTANCE_KINDS.index(DEFAULT_IMPORTANCE),
                                  help="taylor: |activation x gradient|; fisher: squared; fisher-matrix: the whole "
                                       "Fisher matrix, so the QUBO also weighs how removing two filters together "
                                       "adds up (second order); l1: filter weight norm.")
        mu = st.slider("μ (redundancy weight)", 0.0, 2.0, DEFAULT_MU, 0.05, key="fp_mu",
                       help="0 keeps the top-K by importance; higher avoids keeping filters that fire alike.")
        layer = st.selectbox("Layer", names, key="fp_layer")
        refine = st.toggle("Tensor-train refinement (ttopt)", key="fp_refine")
        finetune = st.number_input("Fine-tune epochs (every method)", 0, 20, 0, key="fp_finetune")
    remember_widgets(*KEPT)
    st.session_state["method_options"] = {
        "method": method,
        "options": {"sparsity": sparsity, "importance": importance, "mu": mu, "refine": "tt" if refine else None,
                    "finetune_epochs": int(finetune)},
    }
    with results:
        stats = guarded(filter_stats_for, ws, layer, action="Measuring filter importance")
        if stats is None:
            return
        formulation = guarded(formulation_for, ws, method,
                              {"layer": layer, "sparsity": sparsity, "importance": importance, "mu": mu},
                              {"stats": stats}, action="Building the filter QUBO")
        if formulation is None:
            return
        bqm = formulation.bqm
        subproblem_metrics(bqm, "one per filter: 1 keeps it", ("Filters kept (K)", formulation.params["k"], None),
                           ("μ", f"{mu:.2f}", None))
        st.caption("The capacity search on Solve shifts the linear terms until the best sample keeps exactly K "
                   "filters; shown here at zero shift."
                   + (" With the Fisher matrix the couplings also hold its cross terms: how much removing two "
                      "filters together costs beyond removing each alone (they can be negative)."
                      if importance == "fisher-matrix" else ""))
        st.plotly_chart(qubo_heatmap(bqm, log_scale=log_scale), key="qubo_heatmap", width="stretch")
        report = method_report(method)
        if report is None:
            st.info("Run filter pruning on the **Solve** page to compare the kept filters with greedy Taylor, "
                    "L1 top-K and the L1-QUBO.")
        else:
            channels = {r["layer"]: r["channels"] for r in report["layers"]}
            st.plotly_chart(kept_filters_map(kept_per_layer(report), channels), key="kept_filters",
                            width="stretch")
        st.download_button("Download BQM (JSON)", data=json.dumps(qubo_download(bqm)), file_name="bqm.json",
                           mime="application/json", key="download_bqm")


def mixed_precision_section() -> None:
    """F1: the whole mixed-precision QUBO."""
    with settings:
        # a default next to a value kept in Session State makes Streamlit warn; the kept value wins anyway
        options = st.multiselect("Options per unit", ["prune", 1, 2, 3, 4, 5, 6, 7, 8, "keep"],
                                 default=None if "options" in st.session_state else ["prune", 2, 4, 8, "keep"],
                                 key="options",
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
                help="capacity: raise λ bits (bisection) until the optimum fits (sparse QUBO, embeddable; may "
                     "leave part of the budget unused). slack: a quadratic penalty with slack variables (costs "
                     "rounded up to the slack's unit, so it is conservative; dense and hard for annealers).")
        groups = st.number_input("Channel groups per layer (fine-grained)", 1, 16, 1, key="groups")
        pairwise = st.toggle("Pairwise terms for neighbouring units", key="pairwise",
                             help="Measures joint minus individual loss increases: slower, more accurate.")
        sensitivity = st.selectbox("Sensitivity", ["measured", "hessian", "magnitude"], key="sensitivity",
                                   help="measured: loss increase on calibration data. hessian: Hutchinson trace x "
                                        "quantization noise. magnitude: squared weight perturbation.")
        log_scale = st.toggle("Symmetric log colours", value=True, key="log_scale")
    remember_widgets(*KEPT)

    if method not in IMPLEMENTED_METHODS:
        with results:
            st.info(f"The **{method}** method is not available in this version yet; choose mixed-precision.")
        return

    formulation_options = {
        "options": list(options),  # empty: a plain message, not the defaults in silence
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
                return
            st.caption("Showing the QUBO of the earlier settings; Embed and Solve wait until these settings build.")
        bqm = formulation.bqm
        n, m = bqm.num_variables, bqm.num_interactions
        density = 2 * m / (n * (n - 1)) if n > 1 else 0.0
        c = st.columns(4)
        c[0].metric("Variables", n)
        c[1].metric("Interactions", m)
        c[2].metric("Density", f"{density:.1%}")
        budget = formulation.tables.get("budget_bits")
        c[3].metric("Budget", human_bits(budget) if budget else "none")
        start = formulation.params.get("capacity_breakpoint")
        if start is not None:
            st.caption(f"Capacity search: the budget binds from λ bits = {start:.3g} "
                       f"({len(formulation.params.get('capacity_trace') or [])} exact solves). The QUBO below is at "
                       f"λ bits = {formulation.params['lambda_bits']:.3g}, the middle of the range where that "
                       "optimum stays optimal, so no over-budget state comes within a hair of it.")
        ratio = formulation.params.get("precision_ratio")
        if ratio is not None and ratio * QPU_RELATIVE_PRECISION > 1:
            st.caption(f"Precision: the two closest options of one unit differ by 1/{ratio:.2g} of this QUBO's largest "
                       f"coefficient. A QPU sets each bias to about {QPU_RELATIVE_PRECISION:.0%} of its range, so on "
                       "hardware such differences are lost in control errors; the simulated samplers here compute "
                       "in double precision and do not have this limit.")
        unused = slack_budget(formulation)
        if unused is not None:
            st.info(f"The budget does not bind: at λ bits = {formulation.params['lambda_bits']:g} the QUBO's optimum "
                    f"is {human_bits(unused[0])}, already under the {human_bits(unused[1])} allowed, so the size "
                    "penalty alone decides. Lower λ bits (0 leaves the budget as the only size control) for the "
                    "best decision that uses the budget.")
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


# Sections return instead of calling st.stop(), so app.py's sidebar summary is redrawn after the page.
{"adaround": adaround_section, "filter-pruning": filter_pruning_section}.get(method, mixed_precision_section)()
