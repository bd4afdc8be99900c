"""Solve: sample the QUBO, compare with the exact optimum, compress and evaluate."""

import contextlib
import time

import streamlit as st

from core.errors import InvalidInputError
from core.evaluate.paired import paired_caption, paired_summary
from core.formulations.mixed_precision import QPU_RELATIVE_PRECISION
from core.methods.adaround import workload
from core.methods.filter_pruning import kept_per_layer
from core.runs import MULTI_QUBO_METHODS, complete_run, run_method
from core.solvers import available_samplers
from core.store import best_against_exact
from core.viz import decision_bars, energy_histogram, kept_filters_map, layer_error_bars, split_by_feasibility
from ui.common import (
    before_after_metrics,
    guarded,
    human_bits,
    human_duration,
    page_intro,
    require_workspace,
    short_number,
    timing_caption,
)
from ui.pipeline import (
    keep_widget,
    parse_param,
    problem_key,
    remember_widgets,
    require_formulation,
    run_store,
)

HIDDEN_PARAMS = {"num_reads", "seed", "groups", "token"}
WIDE_CHART_UNITS = 8
# per-layer table columns of the multi-QUBO reports: (label, explanation)
LAYER_COLUMNS = {
    "f": ("weights per channel", "weights of one output channel (its QUBO has this many variables, fewer if clipped)"),
    "qubo_vars": ("QUBO size", "variables of each channel QUBO before clipping fixed some"),
    "free_vars": ("free variables", "QUBO variables over all channels after clipping"),
    "error_qubo": ("error QUBO", "relative squared output error of the layer, QUBO rounding, on calibration data"),
    "error_rtn": ("error RTN", "the same for round-to-nearest"),
    "error_relaxed": ("error AdaRound", "the same for AdaRound's continuous relaxation (classical baseline), rounding "
                                        "the layers in order on its own inputs"),
    "ratio": ("error ratio", "error QUBO / error RTN"),
    "drift_qubo": ("drift QUBO", "relative error against the float network's output (earlier layers rounded too)"),
    "drift_rtn": ("drift RTN", "the same for round-to-nearest"),
    "energy_ratio": ("energy ratio", "sum of channel QUBO energies / round-to-nearest's"),
    "polished_channels": ("descent improved", "channels where descent improved the sampler's best read"),
    "rtn_descent_channels": ("descent from RTN won", "channels where descent from round-to-nearest beat the sampler"),
    "rtn_kept_channels": ("RTN kept", "channels where nothing beat round-to-nearest"),
    "k": ("K kept", "filters kept (exact, by capacity search)"),
    "objective": ("objective", "QUBO objective of the kept set (importance and redundancy terms)"),
    "penalty": ("P", "count penalty of the capacity search at the end"),
    "shift": ("shift", "linear shift found by the capacity search"),
    "hit": ("exactly K", "a sample kept exactly K filters"),
    "polish_swaps": ("swaps", "1-swap descent moves after the sampler"),
    "channels": ("filters", "filters of the layer before pruning"),
    "kept_qubo": ("kept (QUBO)", "filters the QUBO decision keeps"),
    "solves": ("sampler calls", "sampler calls in the layer's capacity search"),
    "repaired": ("repaired", "no read kept exactly K filters, so the nearest was repaired greedily"),
    "kept_greedy_taylor": ("kept (greedy Taylor)", "filters the greedy Taylor top-K baseline keeps"),
    "kept_l1_topk": ("kept (L1 top-K)", "filters the L1-norm top-K baseline keeps"),
    "kept_l1_qubo": ("kept (L1-QUBO)", "filters the L1-QUBO baseline keeps"),
    "kind": ("kind", "conv or linear"),
    "out_channels": ("channels", "output channels: one rounding QUBO each"),
    "batches": ("sampler calls", "combined BQMs the layer's channel QUBOs were sampled in"),
    "gram_s": ("Gram s", "seconds to collect the layer's calibration Gram matrix"),
    "solve_s": ("solve s", "seconds to sample and polish the layer"),
    "target": ("objective", "what the QUBO minimises: the layer's own output error, or against the float network"),
    "safeguard_rtn": ("safeguard kept RTN", "the safeguard set the whole layer back to round-to-nearest"),
}
PAIRED_HELP = ("Scored on the same examples: +a are the examples only the QUBO model classifies correctly, −b those "
               "only this baseline does; p is the exact McNemar test's (two-sided) chance of a split at least this "
               "uneven if both were equally accurate.")
# kept across page switches (not the token: it stays only in its own widget)
ADAROUND_CAPTION = {
    "layer": "Layer errors are measured on the calibration data the rounding was fitted to, and a lower error does "
             "not always mean a higher accuracy: at 1 bit on digits-cnn the QUBO's errors are far lower and its "
             "accuracy is lower, beyond chance on two of five digits-cnns trained with different seeds; from 2 bits "
             "up it is never below beyond chance. The Fisher-weighted objective (Objective on Formulate) fixes that: "
             "at 1 bit it is never below round-to-nearest beyond chance on ten networks (benchmarks/RESULTS.md). "
             "Try Scale = mse on Formulate too: min-max makes round-to-nearest weak at 2-3 bits. AdaRound's "
             "continuous relaxation minimises the same objective classically (20,000 Adam steps per layer), so it "
             "is the sampler's direct rival; its energy on the very channel problems solved here is in the run's "
             "report (baselines.adaround_relaxed).",
    "fisher": "This run's QUBOs weigh each output's error by the Fisher information of the predictions; the layer "
              "errors shown are plain squared output errors on the calibration data, which this objective does not "
              "minimise, so they can be higher than the output-error objective's. At 1 bit it keeps accuracy at or "
              "above round-to-nearest's on the digits models, where the output-error objective does not; "
              "AdaRound's continuous relaxation with the same Fisher weighting gets within chance of it, so the "
              "gain is the objective's, not the sampler's (benchmarks/RESULTS.md). The relaxation's energies on "
              "the very channel problems solved here are in the run's report (baselines.adaround_relaxed).",
}
KEPT = ("sampler", "reads", "reads_adaround", "reads_filter-pruning", "solve_seed")

page_intro(
    "Solve",
    "Send the QUBO to a sampler. Every read is a candidate decision; the histogram shows all their energies next "
    "to the exact optimum (computed classically where possible). The best feasible decision is applied to the "
    "model and evaluated. Runs are saved to the history for the Compare page. For adaround and filter pruning "
    "Run solves every subproblem (each output channel, each conv layer) and compares with the classical "
    "baselines.",
)


def _sampler_params():
    sampler_params = {}
    for name, (raw, default) in params.items():
        try:
            value = parse_param(raw, default)
        except ValueError:
            raise InvalidInputError(f"{name} = {raw!r} is not a valid value.") from None
        if value is not None and value != default:
            sampler_params[name] = value
    return sampler_params


def _estimate_caption(reads: int) -> None:
    """Roughly how long sa samples the adaround layers chosen on Formulate, at the chosen reads and sweeps."""
    options = (st.session_state.get("method_options") or {}).get("options", {})
    layers = options.get("layers")
    if not layers:
        return
    try:
        sweeps = int(_sampler_params().get("num_sweeps", 1000))
        load = workload(ws.model, layers, num_reads=reads, num_sweeps=sweeps)
    except InvalidInputError:
        return  # a bad value is reported when Run is pressed
    iterations = options.get("relaxation_iterations") or 0
    baseline = (f", then roughly {human_duration(load.relaxation_seconds(iterations))} for the AdaRound-relaxation "
                "baseline" if iterations else "")
    st.caption(f"Roughly {human_duration(load.seconds)} of sampling for the {len(layers)} chosen layer(s) "
               f"at {reads} reads x {sweeps} sweeps{baseline} (estimates for this machine).")


ws = require_workspace()
formulation = require_formulation()
multi = formulation.method in MULTI_QUBO_METHODS

keep_widget(*KEPT)
settings, results = st.columns([1, 2], gap="large")
with settings:
    st.subheader("Settings")
    token = st.text_input("D-Wave API token (optional)", type="password", key="dwave_token",
                          help="Kept only in this browser session; never shown, logged or saved. "
                               "DWAVE_API_TOKEN on the server works too.")
    infos = {i.name: i for i in available_samplers(token=token or None)}
    names = list(infos)
    sampler = st.selectbox(
        "Sampler", names, key="sampler", index=names.index("sa"),
        format_func=lambda n: n if infos[n].is_available else f"{n} (unavailable)",
    )
    info = infos[sampler]
    st.caption(info.description)
    ratio = formulation.params.get("precision_ratio")
    if sampler == "dwave" and ratio is not None and ratio * QPU_RELATIVE_PRECISION > 1:
        st.warning(f"The closest options of one unit differ by 1/{ratio:.2g} of this QUBO's largest coefficient, "
                   f"below the QPU's precision (about {QPU_RELATIVE_PRECISION:.0%} of its range): expect its "
                   "reads to pick among close options almost at random. Formulate says more.",
                   icon=":material/warning:")
    if not info.is_available:
        st.warning(f"{sampler} is unavailable: {info.reason_unavailable}")
    if multi:
        reads = st.number_input("Reads per subproblem batch", 1, 10_000, 4 if formulation.method == "adaround" else 50,
                                key=f"reads_{formulation.method}",
                                help="adaround samples each layer's channels together, then keeps each channel's "
                                     "best read; filter pruning samples each layer once per capacity-search step.")
    else:
        reads = st.number_input("Reads", 1, 10_000, 100, key="reads")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="solve_seed")
    remember_widgets(*KEPT)
    params = {}
    with st.expander("Sampler parameters"):
        for p in info.parameters:
            if p.name in HIDDEN_PARAMS:
                continue
            raw = st.text_input(p.name, value="" if p.default is None else str(p.default), help=p.help,
                                key=f"param_{sampler}_{p.name}")
            params[p.name] = (raw, p.default)
    if multi and formulation.method == "adaround" and sampler == "sa":
        _estimate_caption(int(reads))
    c1, c2 = st.columns(2)
    run = c1.button("Run", type="primary", key="run_button", width="stretch", disabled=not info.is_available)
    c2.button("Cancel", key="cancel_button", width="stretch",
              help="Stops the current run; earlier results stay.")


_ENCODING_GIVES_AWAY = {
    "capacity": "the capacity encoding solves the QUBO at a raised λ bits (a Lagrangian relaxation of the budget), "
                "which can leave part of the budget unused",
    "slack": "the slack encoding rounds each option's cost up to its unit, which can exclude decisions that fit in "
             "bits",
}


def _budget_caption(budget, params):
    given = params.get("lambda_bits_given")
    at = f"λ bits = {given:g}" if isinstance(given, (int, float)) else "the λ you set"
    problem = f"On the budget problem itself (the objective at {at}, the size counted in exact bits)"
    if budget["reaches"]:
        return f"{problem}, this decision is the optimum."
    text = (f"{problem}, the best decision (exact) scores {budget['optimum']:.6g} and this one "
            f"{budget['value']:.6g}, {budget['gap']:.3g} above.")
    encoding_gap = budget["encoding_gap"]
    if encoding_gap is None:
        return text
    if encoding_gap == 0:
        return text + " The QUBO's own optimum is that optimum too, so the gap is the sampler's."
    why = _ENCODING_GIVES_AWAY.get(params.get("budget_encoding"), "the budget encoding only approximates it")
    return text + f" The QUBO's own optimum already lies {encoding_gap:.3g} above it: {why}."


@contextlib.contextmanager
def _failed(status):
    """Mark the status box as failed when the run raises (the error itself is shown by guarded)."""
    try:
        yield
    except Exception:
        status.update(label="Failed: see the message below", state="error", expanded=False)
        raise


def _save(report, status):
    """Save the run; the status line says what ran (a value typed out of a field's range is not used)."""
    run_id = guarded(run_store().add, report, action="Saving the run")
    status.update(label=f"Done: run {run_id if run_id is not None else '(not saved)'} ({report['num_reads']} reads, "
                        f"seed {report['seed']})", state="complete", expanded=False)
    return run_id


def _solve_multi():
    settings = st.session_state.get("method_options") or {}
    if settings.get("method") != formulation.method:
        raise InvalidInputError("Open the Formulate page again to choose this method's settings.")
    config = {"token": token} if token and info.needs_token else None
    with st.status(f"Running {formulation.method} with {sampler}...", expanded=True) as status, _failed(status):
        report, _bqm = run_method(ws, formulation.method, sampler=sampler, num_reads=int(reads), seed=int(seed),
                                  options=settings["options"], sampler_params=_sampler_params(),
                                  sampler_config=config, progress=lambda _f, message: status.write(message))
        run_id = _save(report, status)
    report["run_id"] = run_id
    return report


def _solve():
    sampler_params = _sampler_params()
    config = {"token": token} if token and info.needs_token else None
    with st.status(f"Solving with {sampler}...", expanded=True) as status, _failed(status):
        report = complete_run(ws, formulation, sampler=sampler, num_reads=int(reads), seed=int(seed),
                              sampler_params=sampler_params, sampler_config=config,
                              build_s=st.session_state.get("formulation_build_s", 0.0), stage=status.write)
        run_id = _save(report, status)
    report["run_id"] = run_id
    return report


def _multi_check_caption(report, what):
    """How much of a multi-QUBO run was checked exactly, and how much classical steps decided."""
    exact, layers = report.get("exact"), report.get("layers", [])
    text = ("No exact check was run." if not exact else
            f"Checked exactly: {exact['covered']} of {exact['total']} {what} (the rest are too large to solve "
            f"exactly); {exact['optimal']} of those are at their optimum.")
    if what == "channels":
        channels = sum(r.get("out_channels", 0) for r in layers)
        descent = sum(r.get("rtn_descent_channels", 0) for r in layers)
        kept = sum(r.get("rtn_kept_channels", 0) for r in layers)
        text += (f" Classical steps decided part of it: descent from round-to-nearest beat the sampler's best "
                 f"read in {descent} of {channels} channels, and {kept} kept round-to-nearest because nothing "
                 "beat it.")
        relaxed = (report.get("baselines") or {}).get("adaround_relaxed")
        if relaxed and len(relaxed.get("energies", [])) == len(report.get("energies", [])):
            ours, theirs = report["energies"], relaxed["energies"]
            lower = sum(t < o * (1 - 1e-9) for o, t in zip(ours, theirs, strict=True))
            text += (f" On the same channel problems AdaRound's relaxation totals {short_number(relaxed['energy'])} "
                     f"against {short_number(sum(ours))} here, and is lower on {lower} of {len(ours)} channels.")
        return text
    swaps = sum(r.get("polish_swaps", 0) for r in layers)
    return text + f" After the sampler, {swaps} 1-swap descent move{'s' if swaps != 1 else ''} improved the kept sets."


def _show_multi(report):
    best, exact, metrics, timing = report["best"], report["exact"], report["metrics"], report["timing"]
    qubo = report["qubo"]
    c = st.columns(4)
    c[0].metric("Best energy", short_number(best["energy"]),
                help=f"{best['energy']:.10g}. {report.get('energies_note') or ''}".strip())
    c[1].metric("Subproblems", qubo["num_subproblems"], help=f"{qubo['num_variables']} variables in total")
    what = "channels" if report["method"] == "adaround" else "layers"
    if exact:
        c[2].metric("At exact optimum", f"{exact['optimal']} of {exact['covered']}",
                    help=f"Subproblems whose chosen solution is as good as the exact optimum: {exact['method']}."
                         + (" For filter pruning the optimum is the QUBO's best set of exactly K kept filters "
                            "(the capacity search's shift removed); with tensor-train refinement the kept set "
                            "optimises the true loss instead, so it may score below it." if what == "layers" else ""))
    else:
        c[2].metric("At exact optimum", "not computed")
    c[3].metric("Example QUBO", f"{report['bqm_subproblem']['num_variables']} vars",
                help=report["bqm_subproblem"]["note"])
    st.caption(_multi_check_caption(report, what))
    before_after_metrics(metrics, num_classes=ws.data.num_classes, latency_note=(
        "Fake-quantized weights run in fp32 here, so latency does not drop with bits." if report["method"] == "adaround"
        else "Removed filters make the layers really smaller; masked ones (residual joins) do not."))
    timing_caption(timing)
    if report.get("embedding_summary"):
        emb = report["embedding_summary"]
        st.caption(f"Chains over {emb['embeddings']} embedding{'s' if emb['embeddings'] != 1 else ''} on "
                   f"{emb['topology']}: "
                   f"{report['chain_break_fraction']:.1%} broken, mean chain strength {report['chain_strength']:.3g}, "
                   f"longest chain {emb['max_chain_length']} qubits.")
    rows = [{"method": "QUBO", "accuracy": metrics["accuracy_after"], "size": human_bits(metrics["size_bits_after"]),
             "compression": metrics["compression_ratio"], "paired": "—"}]
    for name, b in report.get("baselines", {}).items():
        rows.append({"method": b.get("label", name), "accuracy": b.get("accuracy"),
                     "size": human_bits(b["size_bits"]), "compression": b.get("compression_ratio"),
                     "paired": paired_summary(b.get("paired"))})
    st.markdown("**QUBO vs the classical baselines**")
    st.dataframe(rows, hide_index=True, width="stretch", key="baselines_table",
                 column_config={"accuracy": st.column_config.NumberColumn(format="percent"),
                                "compression": st.column_config.NumberColumn(format="%.2fx"),
                                "paired": st.column_config.TextColumn("QUBO vs this one", help=PAIRED_HELP)})
    st.caption(paired_caption(report.get("baselines", {}), metrics.get("num_examples")))
    if report["method"] == "adaround":
        st.plotly_chart(layer_error_bars(report["layers"]), key="layer_errors", width="stretch")
        st.caption(ADAROUND_CAPTION[report["params"].get("target", "layer")])
    else:
        importance = report["params"].get("importance", "taylor")
        st.caption(f"This run's QUBO uses {importance} importance. On the built-in digits-cnn at 50% sparsity the "
                   "Fisher-matrix QUBO (the default importance, chosen on the validation split) is about one point "
                   "above the Taylor QUBO on test, mostly within chance, and two below the L1-QUBO, whose lead is "
                   "beyond chance on two of five seeds; over five digits-cnns trained with different seeds it is "
                   "5.6 points above the L1-QUBO on average, whose accuracy varies far more from network to "
                   "network (benchmarks/RESULTS.md). The importance and μ matter.")
        channels = {r["layer"]: r["channels"] for r in report["layers"]}
        st.plotly_chart(kept_filters_map(kept_per_layer(report), channels), key="kept_filters", width="stretch")
    st.dataframe(report["layers"], hide_index=True, width="stretch", key="layers_table",
                 column_config={name: st.column_config.Column(label, help=text)
                                for name, (label, text) in LAYER_COLUMNS.items()})


if run:
    with results:
        t0 = time.perf_counter()
        report = guarded(_solve_multi if multi else _solve, action="Solving")
    if report is not None:
        report["click_to_result_s"] = time.perf_counter() - t0
        st.session_state["last_report"] = report
        st.session_state["last_report_key"] = problem_key()

with results:
    report = st.session_state.get("last_report")
    if report is None:
        st.info("Choose a sampler and press **Run**.")
        st.stop()
    if st.session_state.get("last_report_key") != problem_key():
        st.info(f"This is the last run ({report.get('method')}), made before the settings on Formulate changed: "
                "press **Run** to solve the current QUBO.", icon=":material/history:")
    if report.get("method") in MULTI_QUBO_METHODS:
        _show_multi(report)
        st.stop()
    best, exact, metrics, timing = report["best"], report["exact"], report["metrics"], report["timing"]
    c = st.columns(4)
    c[0].metric("Best energy", short_number(best["energy"]),
                help=f"{best['energy']:.10g}: the QUBO energy of the best read, the feasible read whose decision is "
                     "best (by the decision's objective), which need not be the lowest energy of all reads.")
    if exact:
        verdict = best_against_exact(report)
        gap = verdict["gap"]
        at_optimum = verdict["verdict"] == "optimum"
        c[1].metric("Exact optimum", short_number(exact["energy"]),
                    help=f"{exact['energy']:.10g}, the lowest energy of this QUBO (distortion plus the λ-weighted size terms; with a "
                         f"capacity budget, at the λ bits the search settled on, "
                         f"{report.get('lambda_bits') or 0:.3g}), by {exact['method']}; "
                         + ("the best read found it." if at_optimum else f"the best read is {gap:.3g} above it."))
        aside = (f" Its decision's objective is {verdict['value']:.6g}, which is what the optimum measures; the QUBO "
                 "energy adds the budget penalty's slack terms, or the floating-point rounding of their large "
                 "coefficients." if verdict["energy_apart"] else "")
        subject = "The best read's decision" if verdict["feasible"] else "The best read (infeasible)"
        if verdict["verdict"] == "below":
            st.caption(f"{subject} is {-gap:.3g} below the exact optimum of this QUBO: it fits the budget in "
                       "bits, while the slack encoding rounds costs up, so its optimum can miss such decisions.")
        else:
            st.caption((f"{subject} is the exact optimum." if at_optimum
                        else f"{subject} is {gap:.3g} above the exact optimum.") + aside)
        budget = verdict["budget"]
        if budget is not None:
            st.caption(_budget_caption(budget, report.get("params", {})))
    else:
        c[1].metric("Exact optimum", "not computed")
    if report["sampler"] == "exact":  # it lists every state, so the share says nothing about a sampler
        c[2].metric("Feasible states", f"{report['feasible_fraction']:.0%}",
                    help="The exact solver lists every state of the QUBO; this is the share that satisfies the "
                         "constraints, not a sampler's success rate.")
    else:
        c[2].metric("Feasible reads", f"{report['feasible_fraction']:.0%}")
        broken = report.get("infeasible_reads") or {}
        if broken:
            st.caption("Infeasible reads: " + ", ".join(f"{n} {kind}" for kind, n in broken.items())
                       + f" (of {len(report.get('energies', []))}).")
    cbf = report.get("chain_break_fraction")
    c[3].metric("Chain breaks", "n/a" if cbf is None else f"{cbf:.1%}")
    if not best["feasible"]:
        st.warning("No read satisfies every constraint; the lowest-energy one breaks: "
                   + "; ".join(best["violations"]))
    elif report.get("lowest_energy_read", {}).get("feasible") is False:
        st.info(f"The lowest-energy read ({report['lowest_energy_read']['energy']:.6g}) breaks a constraint, "
                "so the best feasible read is shown and applied.")
    elif report.get("lowest_energy_read", {}).get("energy", best["energy"]) < best["energy"]:
        st.caption(f"A feasible read with a lower energy ({report['lowest_energy_read']['energy']:.6g}) has a worse "
                   "decision: with slack variables, the energy also counts how far a read's slack bits are from "
                   "their best, so the best read is chosen by its decision.")
    st.plotly_chart(energy_histogram(split_by_feasibility(report), exact=exact["energy"] if exact else None,
                                     normalize=False, title="Energy of all reads (count)"),
                    key="energy_hist", width="stretch")
    timing_caption(timing)
    # many layers need the full width for their names; a few fit beside their table
    left, right = (st.container(), st.container()) if len(best["decision"]) > WIDE_CHART_UNITS else st.columns(2)
    units = {u["name"]: u for u in report.get("units", [])}
    sizes = {name: option["cost_bits"] for name, choice in best["decision"].items() if name in units
             for option in units[name]["options"] if str(option["option"]) == str(choice)}
    left.plotly_chart(decision_bars(best["decision"], sizes=sizes), key="decision_bars", width="stretch")
    right.dataframe([{"unit": k, "option": str(v), "params": units.get(k, {}).get("params"), "size (bits)": sizes.get(k)}
                     for k, v in best["decision"].items()], hide_index=True, width="stretch")
    before_after_metrics(metrics, num_classes=ws.data.num_classes,
                         latency_note="Fake-quantized weights run in fp32 here, so latency does not drop with bits.")
