"""Compare: the run history, energy distributions side by side, accuracy versus size."""

import streamlit as st

from core.runs import MULTI_QUBO_METHODS
from core.store import default_comparison, for_display
from core.viz import baseline_comparison, energy_ecdf, energy_histogram, pareto_scatter, sensitivity_heatmap
from ui.common import guarded, page_intro
from ui.pipeline import run_store

page_intro(
    "Compare",
    "Every completed run is kept here, across refreshes and restarts. Select runs to overlay their energy "
    "distributions; the gap to the exact optimum and the time-to-solution (99% confidence, from the sampling time "
    "measured on this machine; for the simulated QPU that is its classical simulation, not QPU time) say how good "
    "and how fast each sampler was here. The scatter shows which runs are Pareto-optimal in accuracy and size.",
)

store = guarded(run_store, action="Opening the run history")
if store is None:
    st.stop()
df = guarded(store.dataframe, limit=500, action="Reading the run history")
if df is None:
    st.stop()
if df.empty:
    st.info("No runs yet. Solve a QUBO on the **Solve** page and it will appear here.")
    st.page_link("app_pages/solve.py", label="Go to Solve", icon=":material/bolt:")
    st.stop()

columns = ["id", "model", "method", "setting", "sampler", "seed", "num_variables", "best_energy", "exact_energy",
           "gap_pct", "p_optimum", "tts99_s", "accuracy_after", "size_bits_after", "compression_ratio",
           "total_time_s", "name", "created_at"]
table = for_display(df[[c for c in columns if c in df.columns]])
st.subheader(f"Runs ({len(table)})")
selection = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="runs_table",
    column_config={
        "gap_pct": st.column_config.NumberColumn(
            "gap %", format="%.3f",
            help="Gap of the best read to the exact optimum, in % of |optimum|: near a zero optimum even a small gap "
                 "is a large percentage, so read it with the best and exact columns."),
        "p_optimum": st.column_config.NumberColumn("P(opt)", format="%.3f",
                                                   help="Probability per read of reaching the optimum."),
        "tts99_s": st.column_config.NumberColumn(
            "TTS99 (s)", format="%.4g",
            help="Time to reach the optimum with 99% confidence: the sampling time per read on this machine times "
                 "the reads needed. tabu searches for its timeout per read whatever the problem, so its TTS mostly "
                 "reflects that setting."),
        "accuracy_after": st.column_config.NumberColumn("accuracy", format="%.4f"),
        "compression_ratio": st.column_config.NumberColumn("ratio", format="%.2f"),
        "best_energy": st.column_config.NumberColumn("best", format="%.6g"),
        "exact_energy": st.column_config.NumberColumn("exact", format="%.6g"),
        "num_variables": st.column_config.NumberColumn("vars"),
        "size_bits_after": st.column_config.NumberColumn("size (bits)", format="%d"),
        "total_time_s": st.column_config.NumberColumn("time (s)", format="%.3g"),
        "name": st.column_config.TextColumn(width="small"),
        "setting": st.column_config.TextColumn(help="What defines the run's QUBO(s): λ and budget, bits, sparsity."),
    },
)
rows = selection.selection.rows if selection is not None else []
chosen_ids = [int(table.iloc[i]["id"]) for i in rows] or default_comparison(table)
st.caption("Select rows to compare them; without a selection the two newest runs of the newest run's method and "
           "model are shown. A blank P(opt) or TTS99 is not defined for that run (no exact optimum, a "
           "multi-QUBO method, or an exact/ga/rl sampler); a blank TTS99 with P(opt) 0 means the optimum "
           "was never reached.")

reports = guarded(store.get_many, chosen_ids, action="Loading runs") or {}
left, right = st.columns(2)
per_subproblem = sorted(rid for rid, r in reports.items() if r.get("method") in MULTI_QUBO_METHODS)
if per_subproblem:
    which = ", ".join(f"#{rid}" for rid in per_subproblem)
    st.caption(f"{'Runs' if len(per_subproblem) > 1 else 'Run'} {which} "
               f"{'solve' if len(per_subproblem) > 1 else 'solves'} one QUBO per channel or layer and "
               f"{'keep' if len(per_subproblem) > 1 else 'keeps'} one best energy each, not a distribution of reads, "
               "so they are left out of the energy charts: compare them against their baselines below.")
reports_with_reads = {rid: r for rid, r in reports.items() if r.get("method") not in MULTI_QUBO_METHODS}
if reports_with_reads:
    reports = reports_with_reads
    energies = {f"#{rid} {r.get('sampler', '')}": r.get("energies", []) for rid, r in reports.items()}
    exacts = {r["exact"]["energy"] for r in reports.values() if r.get("exact")}
    exact = exacts.pop() if len(exacts) == 1 else None
    left.plotly_chart(energy_histogram(energies, exact=exact), key="compare_hist", width="stretch")
    right.plotly_chart(energy_ecdf(energies, exact=exact), key="compare_ecdf", width="stretch")
    methods = {r.get("method") for r in reports.values()}
    models = {r.get("model") for r in reports.values()}
    notes = {r["energies_note"] for r in reports.values() if r.get("energies_note")}
    if len(methods) > 1:
        st.warning(f"The selected runs are of different methods ({', '.join(sorted(map(str, methods)))}): their "
                   "energies measure different things and are not comparable. Select runs of one method.",
                   icon=":material/warning:")
    elif len(models) > 1:
        st.warning(f"The selected runs are of different models ({', '.join(sorted(map(str, models)))}): their "
                   "QUBOs differ, so the energies are not comparable. Select runs of one model.",
                   icon=":material/warning:")
    elif exact is None and len({r.get("exact", {}) and r["exact"]["energy"] for r in reports.values()}) > 1:
        st.caption("The selected runs solve different QUBOs, so no single exact optimum is marked.")
    for note in notes:
        st.caption(f"Energies here: {note}")

left, right = st.columns(2)
plottable = table.dropna(subset=["accuracy_after", "size_bits_after"])
focus_model = table.loc[table["id"] == chosen_ids[0], "model"].iloc[0] if chosen_ids else None
if focus_model is not None:  # accuracy and size of different models are not on one front
    plottable = plottable[plottable["model"] == focus_model]
if not plottable.empty:
    by_run_kind = plottable.assign(run_kind=plottable["method"].astype(str) + " / " + plottable["sampler"].astype(str))
    left.plotly_chart(pareto_scatter(by_run_kind, color="run_kind"), key="pareto", width="stretch")
    if table["model"].nunique() > 1:
        left.caption(f"Runs of {focus_model} only (the model of the first selected run).")
latest = reports.get(chosen_ids[0]) if reports else None
if latest and latest.get("units"):
    right.plotly_chart(sensitivity_heatmap(latest["units"], log_scale=True), key="sensitivity", width="stretch")

BASELINE_RUNS = 40  # newest runs per method in the baseline charts
methods_run = [m for m in ("adaround", "filter-pruning") if (table.get("method") == m).any()]
if methods_run:
    st.subheader("Against classical baselines")
    st.caption("Every adaround and filter-pruning run stores its classical baselines (round-to-nearest; greedy "
               "Taylor, L1 top-K and the L1-QUBO) evaluated on the same data: the newest runs of each, by bit width "
               "or sparsity. Only series with the same model and setting compare like with like, and one test "
               "example is 100/N points of accuracy: small gaps may be a single example. Hover a baseline's marker for "
               "the paired test against that run's QUBO model (examples only one of the two gets right, and the "
               "chance of a split at least that uneven between equally accurate models).")
    for method in methods_run:
        ids = [int(i) for i in table.loc[table["method"] == method, "id"].head(BASELINE_RUNS)]
        runs = guarded(store.get_many, ids, action="Loading runs") or {}
        figure = guarded(baseline_comparison, runs, method, action="Drawing the baseline comparison")
        if figure is not None:
            st.plotly_chart(figure, key=f"baselines_{method}", width="stretch")

with st.expander("Rename or delete a run"):
    run_id = st.selectbox("Run", list(table["id"]), key="edit_run",
                          format_func=lambda i: f"#{i} {table.set_index('id').loc[i, 'name']}")
    new_name = st.text_input("New name", key="new_name")
    c1, c2 = st.columns(2)
    if c1.button("Rename", key="rename_button") and new_name.strip():
        if guarded(lambda: store.rename(int(run_id), new_name.strip()) or True, action="Renaming"):
            st.rerun()
    if c2.button("Delete", key="delete_button"):
        if guarded(lambda: store.delete(int(run_id)) or True, action="Deleting"):
            st.rerun()
