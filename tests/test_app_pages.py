"""AppTest tests for every page: happy paths, error paths, state carried between pages."""

from __future__ import annotations

import urllib.error

import pytest
from apptest_helpers import load_digits_cnn, load_torchvision_on_random_data, metrics, ok, start_app
from streamlit.testing.v1 import AppTest

TIMEOUT = 120


def choose_slack_budget(at: AppTest) -> AppTest:
    """On Formulate: a budget of the default fraction of the fp32 size, encoded with slack variables."""
    at.radio(key="budget_mode").set_value("ratio of fp32 size").run()
    at.radio(key="budget_encoding").set_value("slack").run()
    return at


def solve_default_qubo(at: AppTest) -> AppTest:
    """Formulate's default mixed-precision QUBO, solved on Solve with the default sampler."""
    at.switch_page("app_pages/formulate.py").run()
    at.switch_page("app_pages/solve.py").run()
    at.button(key="run_button").click().run()
    return at


@pytest.fixture
def app(tmp_path, monkeypatch) -> AppTest:
    return start_app(tmp_path, monkeypatch, timeout=TIMEOUT)


def test_home_explains_the_workflow(app):
    ok(app)
    assert app.title[0].value == "QUBO Compression Lab"
    text = " ".join(m.value for m in app.markdown)
    for step in ("Model", "Formulate", "Embed", "Solve", "Compare"):
        assert step in text


def test_pages_without_a_model_point_to_the_model_page(app):
    for page in ("app_pages/formulate.py", "app_pages/embed.py", "app_pages/solve.py"):
        app.switch_page(page).run()
        ok(app)
        assert any("Model" in i.value for i in app.info)


def test_model_page_loads_digits_cnn_and_shows_units(app):
    load_digits_cnn(app)
    m = metrics(app)
    assert float(m["Accuracy"].rstrip("%")) >= 95.0
    assert m["Parameters"] == "9,930"
    units = app.dataframe[0].value
    assert list(units["name"]) == ["conv1", "conv2", "fc"]
    assert list(units["safe_to_prune"]) == [True, True, False]


def test_model_page_error_keeps_previous_model(app, monkeypatch):
    load_digits_cnn(app)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", offline)
    app.radio(key="model_source").set_value("torchvision").run()
    app.radio(key="tv_weights").set_value("pretrained").run()
    app.button(key="load_model").click().run()
    ok(app)
    assert any("offline" in e.value for e in app.error)
    assert app.session_state["workspace"].model_name == "digits-cnn"
    assert app.subheader[-1].value == "digits-cnn"


def test_model_page_torchvision_random_weights(app):
    load_torchvision_on_random_data(app, "mobilenet_v3_small")
    ok(app)
    assert app.session_state["workspace"].model_name == "mobilenet_v3_small"
    assert any("chance level" in c.value for c in app.caption)
    solve_default_qubo(app)
    ok(app)
    # a bits chart of this many layers gets the page's full width, not half of it beside its table
    assert len(app.session_state["last_report"]["best"]["decision"]) > 8
    holding = [{c.key for c in col.get("plotly_chart")} for col in app.columns]
    assert [keys for keys in holding if "decision_bars" in keys and "energy_hist" not in keys] == []


def test_formulate_builds_qubo_and_sliders_update_it(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    ok(app)
    assert metrics(app)["Variables"] == "14"  # 3 units x 5 options, no prune for the classifier
    assert any(c.value.startswith("Sources: “Is Quantum Optimization Ready?") for c in app.caption)
    first = app.session_state["formulation"]
    app.slider(key="lambda_bits").set_value(3.0).run()
    ok(app)
    second = app.session_state["formulation"]
    assert second is not first
    assert second.tables["lambda_bits"] == 3.0
    # the sensitivities were reused, not re-measured
    assert second.params["sensitivity"].cached and second.params["sensitivity"].key == first.params["sensitivity"].key
    app.radio(key="budget_mode").set_value("ratio of fp32 size").run()
    ok(app)
    assert metrics(app)["Budget"] != "none"
    # at lambda 3 the optimum is far under a quarter of the size: the page says the budget changes nothing
    assert any(i.value.startswith("The budget does not bind") for i in app.info)
    app.slider(key="lambda_bits").set_value(0.0).run()
    ok(app)
    assert not any(i.value.startswith("The budget does not bind") for i in app.info)
    trace = app.session_state["formulation"].params["capacity_trace"]
    assert len(trace) > 1 and trace[-1]["size_bits"] <= app.session_state["formulation"].params["budget_bits"]


def test_formulate_unimplemented_method_says_so(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("bnn").run()
    ok(app)
    assert any("not available" in i.value for i in app.info)


def test_formulate_bad_option_set_shows_message(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.multiselect(key="options").set_value(["prune"]).run()
    ok(app)
    assert app.error, "a single prune option cannot cover the classifier: expect a plain message"
    assert "formulation" in app.session_state  # the previous QUBO is kept
    # ...but Embed and Solve do not pass it off as the current settings' QUBO
    for page in ("app_pages/solve.py", "app_pages/embed.py"):
        app.switch_page(page).run()
        ok(app)
        assert any("could not be built into a QUBO" in e.value for e in app.error)
        assert not [b for b in app.button if b.key in ("run_button", "embed_button")]
    app.switch_page("app_pages/formulate.py").run()
    app.multiselect(key="options").set_value([]).run()  # no option at all: said, not the defaults in silence
    assert any("at least one compression option" in e.value for e in app.error)
    app.multiselect(key="options").set_value(["prune", 2, 4, 8, "keep"]).run()  # the earlier settings again
    ok(app)
    app.switch_page("app_pages/solve.py").run()
    ok(app)
    assert not app.error and app.button(key="run_button")


def test_embed_on_pegasus_and_too_large_for_chimera(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.switch_page("app_pages/embed.py").run()
    app.button(key="embed_button").click().run()
    ok(app)
    assert int(metrics(app)["Qubits used"].replace(",", "")) >= 14
    embedded = app.session_state["embedding"]
    # A problem too large for a Chimera clique: a plain message, the earlier embedding stays.
    app.switch_page("app_pages/formulate.py").run()
    app.number_input(key="groups").set_value(8).run()
    choose_slack_budget(app)
    ok(app)
    app.switch_page("app_pages/embed.py").run()
    app.selectbox(key="topology").set_value("chimera").run()
    app.radio(key="embed_method").set_value("clique").run()
    app.button(key="embed_button").click().run()
    ok(app)
    assert any("does not fit" in e.value for e in app.error)
    assert app.session_state.get("embedding") is None or app.session_state["embedding"] is not embedded


def test_embed_offers_d_wave_inspector_only_where_its_app_is_installed(app, monkeypatch):
    monkeypatch.setattr("core.inspect.inspector_app_available", lambda: False)  # as here, whatever this machine has
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.switch_page("app_pages/embed.py").run()
    app.button(key="embed_button").click().run()
    ok(app)
    assert not [b for b in app.button if b.key == "open_inspector"]
    assert any("dwave install inspector" in c.value for c in app.caption)
    # The app is closed source and absent here: pretend it is installed and record what it is asked to open.
    opened = []
    monkeypatch.setattr("core.inspect.inspector_app_available", lambda: True)
    monkeypatch.setattr("dwave.inspector.open_problem",
                        lambda problem_id, block="once", timeout=None: opened.append(problem_id) or f"http://x/{problem_id}")
    app.run()
    app.button(key="open_inspector").click().run()
    ok(app)
    assert opened == [app.session_state["inspector_data"]["details"]["id"]]
    assert any(opened[0] in m.value for m in app.success)


def test_solve_runs_sa_saves_and_compare_shows_two_runs(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.switch_page("app_pages/solve.py").run()
    app.selectbox(key="sampler").set_value("sa").run()
    app.button(key="run_button").click().run()
    ok(app)
    m = metrics(app)
    assert float(m["Best energy"]) >= float(m["Exact optimum"]) - 1e-9
    assert sum(c.value.startswith("Timing: build ") for c in app.caption) == 1
    assert any(c.value == "The best read's decision is the exact optimum." for c in app.caption)
    first = app.session_state["last_report"]
    first["best"]["objective"] = None  # a decoder without an objective (the paper encoding): judged by energy
    app.run()
    ok(app)
    assert any(c.value == "The best read's decision is the exact optimum." for c in app.caption)
    first["best"]["objective"] = first["exact"]["energy"] * (1 - 1e-3)  # as a slack-rounded optimum can miss
    app.run()
    ok(app)
    assert any(c.value.startswith("The best read's decision is ") and " below the exact optimum of this QUBO" in c.value
               for c in app.caption)
    first["best"]["objective"] = first["exact"]["energy"]
    # with a budget: judged on the budget problem too, and the gap split between the encoding and the sampler
    first["exact"].update(objective_in_bits=1.0, qubo_optimum_in_bits=1.125)
    first["best"]["objective_in_bits"] = 1.25
    first["params"].update(budget_encoding="capacity", lambda_bits_given=0.0)
    app.run()
    ok(app)

    def budget_caption():
        return next(c.value for c in app.caption if c.value.startswith("On the budget problem itself"))

    assert "(the objective at λ bits = 0, the size counted in exact bits), the best decision (exact) scores 1 and " \
           "this one 1.25, 0.25 above. The QUBO's own optimum already lies 0.125 above it: the capacity encoding " \
           "solves the QUBO at a raised λ bits" in budget_caption()
    first["exact"]["qubo_optimum_in_bits"] = 1.0
    app.run()
    assert budget_caption().endswith("The QUBO's own optimum is that optimum too, so the gap is the sampler's.")
    first["best"]["objective_in_bits"] = 1.0
    app.run()
    assert budget_caption().endswith("this decision is the optimum.")
    for key in ("objective_in_bits", "qubo_optimum_in_bits"):
        del first["exact"][key]
    del first["best"]["objective_in_bits"], first["params"]["budget_encoding"], first["params"]["lambda_bits_given"]
    decision = app.dataframe[0].value  # what each unit stores under its choice adds up to the model's size
    fixed = first["metrics"]["size_bits_before"] - 32 * sum(u["params"] for u in first["units"])
    assert int(decision["size (bits)"].sum()) + fixed == first["metrics"]["size_bits_after"]
    assert first["run_id"] is not None
    app.selectbox(key="sampler").set_value("tabu").run()
    app.button(key="run_button").click().run()
    ok(app)
    app.switch_page("app_pages/compare.py").run()
    ok(app)
    runs = app.dataframe[0].value
    assert len(runs) == 2 and set(runs["sampler"]) == {"sa", "tabu"}
    assert len(app.get("plotly_chart")) >= 3


def test_solve_real_qpu_without_token_is_unavailable(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.switch_page("app_pages/solve.py").run()
    app.selectbox(key="sampler").set_value("dwave").run()
    ok(app)
    assert app.button(key="run_button").disabled
    assert any("token" in w.value.lower() for w in app.warning)


def test_solve_bad_parameter_is_a_message_and_keeps_results(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.switch_page("app_pages/solve.py").run()
    app.selectbox(key="sampler").set_value("sa").run()
    app.button(key="run_button").click().run()
    previous = app.session_state["last_report"]
    app.text_input(key="param_sa_num_sweeps").set_value("lots").run()
    app.button(key="run_button").click().run()
    ok(app)
    assert app.error
    assert app.session_state["last_report"] is previous
    for name, text, message in [("num_sweeps", "0", "sa's num_sweeps must be a whole number of at least 1"),
                                ("beta_range", "banana", "sa's beta_range must be two positive numbers")]:
        app.text_input(key="param_sa_num_sweeps").set_value("1000")
        app.text_input(key=f"param_sa_{name}").set_value(text).run()
        app.button(key="run_button").click().run()
        ok(app)
        assert any(message in e.value and "unexpectedly" not in e.value for e in app.error), [e.value for e in app.error]
        assert app.session_state["last_report"] is previous  # nothing saved, nothing lost


def test_compare_rename_and_delete(app):
    from core.store import RunStore

    load_digits_cnn(app)
    solve_default_qubo(app)
    app.switch_page("app_pages/compare.py").run()
    ok(app)
    app.text_input(key="new_name").set_value("my first run")
    app.button(key="rename_button").click().run()
    ok(app)
    assert list(app.dataframe[0].value["name"]) == ["my first run"]
    assert RunStore().list()[0].name == "my first run"
    app.button(key="delete_button").click().run()
    ok(app)
    assert len(RunStore()) == 0


def test_model_page_missing_torchvision_data_is_a_plain_message(app, tmp_path):
    load_digits_cnn(app)
    app.selectbox(key="data_choice").set_value("torchvision data set").run()
    app.text_input(key="tv_root").set_value(str(tmp_path / "nothing-here")).run()
    app.button(key="load_model").click().run()
    ok(app)
    assert any("not found" in e.value for e in app.error)
    assert app.session_state["workspace"].data.name == "digits-test"


def _torchscript_digits_cnn() -> bytes:
    import io

    import torch

    from core.models import load_model

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(load_model("digits-cnn")), buf)
    return buf.getvalue()


def test_model_page_upload_torchscript_then_a_pickled_module_is_refused(app):
    import io

    import torch

    from core.models import load_model

    app.switch_page("app_pages/model.py").run()
    app.radio(key="model_source").set_value("Upload").run()
    app.file_uploader(key="model_upload").upload("cnn.pt", _torchscript_digits_cnn()).run()
    app.button(key="load_model").click().run()
    ok(app)
    assert app.session_state["workspace"].model_name == "upload:cnn.pt"
    assert float(metrics(app)["Accuracy"].rstrip("%")) >= 95.0

    pickled = io.BytesIO()
    torch.save(load_model("digits-cnn"), pickled)  # a whole pickled module: never loaded
    app.file_uploader(key="model_upload").set_value(("whole-model.pt", pickled.getvalue(),
                                                     "application/octet-stream")).run()
    app.selectbox(key="upload_arch").set_value("digits-cnn").run()
    app.button(key="load_model").click().run()
    ok(app)
    assert any("pickled" in e.value for e in app.error)
    assert app.session_state["workspace"].model_name == "upload:cnn.pt"  # the previous model stays


def test_model_page_bad_npz_upload_is_refused_and_keeps_the_model(app):
    load_digits_cnn(app)
    app.selectbox(key="data_choice").set_value("upload .npz").run()
    app.file_uploader(key="data_upload").upload("data.npz", b"images,labels\n0.1,2\n").run()
    app.button(key="load_model").click().run()
    ok(app)
    assert any(".npz" in e.value for e in app.error)
    assert app.session_state["workspace"].data.name == "digits-test"


def test_formulate_and_embed_settings_survive_a_visit_to_other_pages(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.slider(key="lambda_bits").set_value(1.5).run()
    app.radio(key="budget_mode").set_value("ratio of fp32 size").run()
    app.toggle(key="pairwise").set_value(True).run()
    ok(app)
    built = app.session_state["formulation"]
    app.switch_page("app_pages/embed.py").run()
    app.selectbox(key="topology").set_value("zephyr").run()
    app.button(key="embed_button").click().run()
    ok(app)
    app.switch_page("app_pages/solve.py").run()
    app.switch_page("app_pages/formulate.py").run()
    ok(app)
    assert app.slider(key="lambda_bits").value == 1.5 and app.toggle(key="pairwise").value
    assert app.radio(key="budget_mode").value == "ratio of fp32 size"
    assert app.session_state["formulation"] is built  # the same QUBO, so its embedding still applies
    app.switch_page("app_pages/embed.py").run()
    ok(app)
    assert app.selectbox(key="topology").value == "zephyr" and app.session_state.get("embedding") is not None


def test_compare_warns_when_runs_of_different_models_are_selected(app):
    load_digits_cnn(app)
    solve_default_qubo(app)
    app.switch_page("app_pages/model.py").run()
    app.selectbox(key="builtin_model").set_value("digits-mlp").run()
    app.button(key="load_model").click().run()
    solve_default_qubo(app)
    app.switch_page("app_pages/compare.py").run()
    ok(app)
    assert set(app.dataframe[0].value["model"]) == {"digits-cnn", "digits-mlp"}
    # by default the newest run and the next of its model: nothing to warn about
    assert not app.warning and len(app.get("plotly_chart")) >= 2
    assert any(c.value.startswith("Runs of digits-mlp only") for c in app.caption)  # one model per Pareto front
    app.session_state["runs_table"] = {"selection": {"rows": [0, 1], "columns": [], "cells": []}}
    app.run()
    ok(app)
    assert any("different models" in w.value for w in app.warning)  # the user chose runs of two models


def test_a_small_uploaded_data_set_says_its_accuracy_is_coarse(app):
    import io

    import numpy as np

    from core.data import digits_split

    load_digits_cnn(app)
    test = digits_split().test
    buf = io.BytesIO()
    np.savez(buf, images=test.images[:40].numpy()[:, 0], labels=test.labels[:40].numpy())  # (N, H, W) grayscale
    app.selectbox(key="data_choice").set_value("upload .npz").run()
    app.file_uploader(key="data_upload").upload("small.npz", buf.getvalue()).run()
    app.button(key="load_model").click().run()
    ok(app)
    assert len(app.session_state["workspace"].data) == 20  # half calibrates
    assert any(c.value.startswith("Scored on 20 examples (20 more calibrate)") and "5.0%" in c.value
               for c in app.caption)


def test_a_mixed_precision_result_stays_current_after_a_look_at_another_method(app):
    load_digits_cnn(app)
    solve_default_qubo(app)
    app.switch_page("app_pages/formulate.py").run()
    app.selectbox(key="method").set_value("adaround").run()
    app.selectbox(key="method").set_value("mixed-precision").run()
    app.switch_page("app_pages/solve.py").run()
    ok(app)
    assert not [i for i in app.info if "before the settings on Formulate changed" in i.value]


def test_a_slack_encoded_run_is_judged_by_its_decision(app):
    """The slack encoding's QUBO energy adds slack penalty terms (and their rounding) to the objective the exact
    optimum measures: Solve says the decision is the optimum and why the energy differs."""
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.slider(key="lambda_bits").set_value(0.0).run()
    choose_slack_budget(app)
    ok(app)
    app.switch_page("app_pages/solve.py").run()
    app.selectbox(key="sampler").set_value("sa").run()
    app.number_input(key="reads").set_value(500).run()  # ~1.4% of reads reach the optimum: see test_methods_cli
    app.button(key="run_button").click().run()
    ok(app)
    caption = next(c.value for c in app.caption if c.value.startswith("The best read's decision"))
    assert caption.startswith("The best read's decision is the exact optimum.") and "slack terms" in caption
    report = app.session_state["last_report"]
    assert report["best"]["energy"] != report["exact"]["energy"]


def test_a_capacity_budget_shows_its_search_and_why_reads_are_infeasible(app):
    load_digits_cnn(app)
    app.switch_page("app_pages/formulate.py").run()
    app.slider(key="lambda_bits").set_value(0.0).run()
    app.radio(key="budget_mode").set_value("ratio of fp32 size").run()
    ok(app)
    search = next(c.value for c in app.caption if c.value.startswith("Capacity search: the budget binds from λ bits"))
    params = app.session_state["formulation"].params
    assert f"The QUBO below is at λ bits = {params['lambda_bits']:.3g}" in search
    assert any(c.value.startswith(f"Precision: the two closest options of one unit differ by "
                                  f"1/{params['precision_ratio']:.2g} of this QUBO's largest coefficient")
               for c in app.caption)
    app.switch_page("app_pages/solve.py").run()
    app.selectbox(key="sampler").set_value("dwave").run()
    assert any("below the QPU's precision" in w.value for w in app.warning)
    app.selectbox(key="sampler").set_value("sa").run()
    app.number_input(key="reads").set_value(40).run()
    app.button(key="run_button").click().run()
    ok(app)
    report = app.session_state["last_report"]
    broken = report["infeasible_reads"]
    assert sum(broken.values()) == round((1 - report["feasible_fraction"]) * 40) > 0  # one kind per read here
    assert set(broken) <= {"over budget", "not one-hot"}
    assert any(c.value == "Infeasible reads: " + ", ".join(f"{n} {k}" for k, n in broken.items()) + " (of 40)."
               for c in app.caption)
    assert any(c.value.startswith("On the budget problem itself (the objective at λ bits = 0,") for c in app.caption)
