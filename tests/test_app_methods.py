"""AppTest: adaround and filter pruning on the Formulate and Solve pages
(heatmap of one subproblem, run, metrics and baselines, saved to the store)."""

from __future__ import annotations

import pytest
from apptest_helpers import load_digits_cnn, load_torchvision_on_random_data, metrics, ok, start_app
from streamlit.testing.v1 import AppTest

TIMEOUT = 180


@pytest.fixture
def app(tmp_path, monkeypatch) -> AppTest:
    return load_digits_cnn(start_app(tmp_path, monkeypatch, timeout=TIMEOUT))


def run_on_solve(at: AppTest, sampler: str, method: str, *, reads: int) -> AppTest:
    """Open Solve, pick ``sampler`` and the reads per batch, click Run."""
    at.switch_page("app_pages/solve.py").run()
    at.selectbox(key="sampler").set_value(sampler).run()
    at.number_input(key=f"reads_{method}").set_value(reads).run()
    at.button(key="run_button").click().run()
    return ok(at)


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def test_adaround_formulate_heatmap_then_solve_saves_run(app):
    from core.store import RunStore

    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    ok(app)
    assert metrics(app)["Variables"] == "8"  # conv1 channel 0 at 4 bits: 9 weights, one fixed by clipping
    assert any(c.value.startswith("QUBO shown: 8 variables") for c in app.sidebar.caption)  # the sidebar follows
    assert app.session_state["formulation"].method == "adaround"
    assert len(charts(app)) == 1  # the heatmap; the error chart needs a run
    assert any("of sa sampling at 4 reads on this machine, and roughly " in c.value
               and c.value.endswith("for the AdaRound-relaxation baseline.") for c in app.caption)
    app.slider(key="ar_bits").set_value(2).run()
    app.selectbox(key="ar_layer").set_value("conv2").run()
    app.selectbox(key="ar_channel").set_value(3).run()
    ok(app)
    f = app.session_state["formulation"]
    assert (f.params["layer"], f.params["channel"], f.params["bits"]) == ("conv2", 3, 2)

    app.switch_page("app_pages/solve.py").run()
    assert any(c.value.startswith("Roughly ") and "for the 3 chosen layer(s) at 4 reads x 1000 sweeps, then roughly "
               in c.value and "for the AdaRound-relaxation baseline" in c.value for c in app.caption)
    run_on_solve(app, "sa", "adaround", reads=2)
    report = app.session_state["last_report"]
    assert report["method"] == "adaround" and report["params"]["bits"] == 2
    m = metrics(app)
    assert "Best energy" in m and m["Subproblems"] == "58"
    assert m["At exact optimum"].endswith(" of 16")  # conv1's channels are small enough to enumerate
    layers = report["layers"]
    assert any(c.value.startswith("Checked exactly: 16 of 58 channels (the rest are too large to solve exactly)")
               and f"beat the sampler's best read in {sum(r['rtn_descent_channels'] for r in layers)} of 58 channels"
               in c.value and "On the same channel problems AdaRound's relaxation totals " in c.value
               for c in app.caption)
    assert m["Accuracy"].endswith("%")
    rows = app.dataframe[0].value.to_dict("records")
    assert [r["method"] for r in rows] == ["QUBO", "round-to-nearest", "AdaRound (continuous relaxation)"]
    rtn = report["baselines"]["rtn"]["paired"]
    assert rows[1]["paired"].startswith(f"+{rtn['qubo_only']} / \u2212{rtn['baseline_only']} images, p = ")
    paired = next(c.value for c in app.caption if c.value.startswith(
        f"Paired test on the same {report['metrics']['num_examples']} examples: "))
    verdict = "by more than chance" if rtn["p_value"] < 0.05 else "by no more than chance"
    assert f"from round-to-nearest and AdaRound (continuous relaxation) {verdict}" in paired or (
        f"from round-to-nearest {verdict}" in paired)
    assert rows[0]["paired"] == "—"
    assert len(charts(app)) == 1  # per-layer error chart
    assert sum(c.value.startswith("Timing: build ") and " s (total " in c.value for c in app.caption) == 1
    assert report["run_id"] is not None and RunStore().get(report["run_id"]) is not None

    app.switch_page("app_pages/formulate.py").run()
    ok(app)
    assert len(charts(app)) == 2  # heatmap + per-layer error, QUBO vs RTN

    app.switch_page("app_pages/compare.py").run()
    ok(app)
    assert any("the QUBO and its baselines" in c.proto.spec for c in charts(app))
    assert any(c.value.startswith(f"Run #{report['run_id']} solves one QUBO per channel or layer") for c in app.caption)
    assert not any("Energy of all reads" in c.proto.spec for c in charts(app))  # no reads to plot
    assert app.dataframe[0].value["setting"].tolist() == ["2 bits, minmax"]


def test_filter_pruning_formulate_heatmap_then_solve_shows_baselines(app):
    from core.store import RunStore

    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("filter-pruning").run()
    ok(app)
    m = metrics(app)
    assert m["Variables"] == "16" and m["Filters kept (K)"] == "8"
    assert len(charts(app)) == 1
    assert app.selectbox(key="fp_importance").value == "fisher-matrix"  # the default: the whole Fisher matrix
    assert any("cross terms" in c.value for c in app.caption)
    app.selectbox(key="fp_layer").set_value("conv2").run()
    app.selectbox(key="fp_importance").set_value("fisher").run()
    ok(app)
    assert metrics(app)["Variables"] == "32"
    assert not any("cross terms" in c.value for c in app.caption)

    run_on_solve(app, "sa", "filter-pruning", reads=10)
    report = app.session_state["last_report"]
    assert report["method"] == "filter-pruning" and report["params"]["importance"] == "fisher"
    assert metrics(app)["Subproblems"] == "2"
    assert metrics(app)["At exact optimum"] == "1 of 1"  # conv1: C(16, 8) subsets; conv2 too many
    swaps = sum(r["polish_swaps"] for r in report["layers"])
    assert any(c.value.startswith("Checked exactly: 1 of 2 layers") and f"{swaps} 1-swap descent move" in c.value
               for c in app.caption)
    methods = {r["method"] for r in app.dataframe[0].value.to_dict("records")}
    assert methods == {"QUBO", "greedy Taylor", "L1 top-K", "L1-QUBO"}
    assert len(charts(app)) == 1  # kept filters per layer by method
    assert len(RunStore()) == 1

    app.switch_page("app_pages/compare.py").run()
    ok(app)
    specs = [c.proto.spec for c in charts(app)]
    assert any("filter-pruning: the QUBO and its baselines" in spec for spec in specs)


def test_adaround_on_the_simulated_qpu_needs_small_layers_and_says_so(app):
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    app.slider(key="ar_bits").set_value(1).run()
    run_on_solve(app, "mock-qpu-pegasus", "adaround", reads=2)
    assert any("Layer fc has output channels with 512 rounding variables" in e.value for e in app.error)
    assert app.session_state.get("last_report") is None  # nothing half-done is shown
    def labels(node):
        for child in node.children.values() if isinstance(getattr(node, "children", None), dict) else []:
            yield type(child).__name__, getattr(child, "label", "")
            yield from labels(child)

    assert ("Status", "Failed: see the message below") in set(labels(app.main))  # not spinning on "Running..."

    app.switch_page("app_pages/formulate.py").run()
    app.multiselect(key="ar_layers").set_value(["conv1"]).run()
    app.switch_page("app_pages/solve.py").run()
    app.button(key="run_button").click().run()
    ok(app)
    report = app.session_state["last_report"]
    assert report["params"]["layers"] == ["conv1"] and report["params"]["max_batch_variables"] == 180
    assert metrics(app)["Subproblems"] == "16"
    assert any(c.value.startswith("Chains over 1 embedding on pegasus") for c in app.caption)


def test_adaround_with_the_fisher_objective_from_formulate_to_compare(app):
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    app.slider(key="ar_bits").set_value(1).run()
    app.selectbox(key="ar_target").set_value("fisher").run()
    app.multiselect(key="ar_layers").set_value(["conv1", "fc"]).run()
    app.toggle(key="ar_relaxation").set_value(False).run()
    ok(app)
    f = app.session_state["formulation"]
    assert f.params["target"] == "fisher" and f.params["layer"] == "conv1"
    # conv1 16 x 10^2 and fc 10 x 513^2 float64 numbers
    assert any("The Fisher objective adds 20.1 MiB of Gram matrices (at most 1.0 GiB) and roughly " in c.value
               for c in app.caption)
    assert any(c.value.startswith("conv1 output channel 0: energy = squared pre-activation error weighted by the "
                                  "Fisher information of the predictions over ") for c in app.caption)
    run_on_solve(app, "sa", "adaround", reads=1)
    report = app.session_state["last_report"]
    assert report["params"]["target"] == "fisher" and [r["target"] for r in report["layers"]] == ["fisher"] * 2
    assert "Fisher information" in report["energies_note"]
    app.switch_page("app_pages/compare.py").run()
    ok(app)
    assert app.dataframe[0].value["setting"].tolist() == ["1 bit, minmax, fisher"]


def test_layer_choices_of_a_previous_model_give_way_to_the_new_models_layers(app):
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    app.multiselect(key="ar_layers").set_value(["conv1", "fc"]).run()
    app.selectbox(key="ar_layer").set_value("conv2").run()
    app.switch_page("app_pages/model.py").run()
    app.selectbox(key="builtin_model").set_value("digits-mlp").run()
    app.button(key="load_model").click().run()
    app.switch_page("app_pages/formulate.py").run()
    ok(app)
    assert app.multiselect(key="ar_layers").value == ["fc1", "fc2", "fc3"]
    assert app.selectbox(key="ar_layer").value == "fc1"
    assert not app.warning  # no "choose at least one layer"


def test_adaround_on_a_large_network_starts_with_its_small_layers_and_warns_about_the_rest(app):
    from core.methods.adaround import default_layers, quantizable_layers

    load_torchvision_on_random_data(app, "resnet18")
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    ok(app)
    model = app.session_state["workspace"].model
    chosen = app.multiselect(key="ar_layers").value
    assert chosen == default_layers(model) and 0 < len(chosen) < len(quantizable_layers(model))
    assert any("left out by default" in c.value for c in app.caption) and not app.warning

    app.multiselect(key="ar_layers").set_value(quantizable_layers(model)).run()
    ok(app)
    assert [w.value for w in app.warning if "largest is layer4" in w.value and " h " in w.value]


def test_solve_never_offers_another_methods_qubo_and_marks_a_result_of_older_settings(app):
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    app.toggle(key="ar_relaxation").set_value(False).run()  # the classical baseline is not what this test is about
    run_on_solve(app, "sa", "adaround", reads=1)
    assert "adaround_relaxed" not in app.session_state["last_report"]["baselines"]
    assert not [i for i in app.info if "before the settings on Formulate changed" in i.value]
    app.switch_page("app_pages/formulate.py").run()
    app.slider(key="ar_bits").set_value(3).run()
    app.switch_page("app_pages/solve.py").run()
    ok(app)
    assert [i for i in app.info if "before the settings on Formulate changed" in i.value]
    # showing another channel's QUBO on Formulate changes nothing that Run solves
    app.switch_page("app_pages/formulate.py").run()
    app.slider(key="ar_bits").set_value(4).run()  # back to the run's settings
    app.selectbox(key="ar_channel").set_value(5).run()
    app.switch_page("app_pages/solve.py").run()
    assert not [i for i in app.info if "before the settings on Formulate changed" in i.value]
    # digits-mlp has no conv layers: filter pruning cannot be built, and Solve must not fall back to adaround
    app.switch_page("app_pages/model.py").run()
    app.selectbox(key="builtin_model").set_value("digits-mlp").run()
    app.button(key="load_model").click().run()
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    app.selectbox(key="method").set_value("filter-pruning").run()
    ok(app)
    app.switch_page("app_pages/solve.py").run()
    ok(app)
    assert any("Build a QUBO on the **Formulate** page first." in i.value for i in app.info)
    app.switch_page("app_pages/formulate.py").run()
    assert app.selectbox(key="method").value == "filter-pruning"  # remembered though its section stopped early


def test_a_model_at_chance_before_compression_is_not_blamed_on_the_compression(app):
    load_torchvision_on_random_data(app, "resnet18")
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    app.multiselect(key="ar_layers").set_value(["conv1"]).run()
    run_on_solve(app, "sa", "adaround", reads=1)
    assert any("already at chance level" in c.value for c in app.caption)
    assert not [w for w in app.warning if "no longer classifies" in w.value]
