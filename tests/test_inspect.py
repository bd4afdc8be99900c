"""Inspector data for an embedding, from a short simulated-QPU preview."""

from __future__ import annotations

import dimod
import pytest

from core.embedding import find_embedding
from core.inspect import preview_inspector_data
from core.viz import embedding_view_from_inspector, inspector_embedding


@pytest.mark.parametrize("topology", ["pegasus", "zephyr", "chimera"])
def test_preview_feeds_the_embedding_view(topology):
    bqm = dimod.generators.gnp_random_bqm(8, 0.6, "BINARY", random_state=1)
    result = find_embedding(bqm, topology, "auto", seed=0)
    data = preview_inspector_data(bqm, result.embedding, topology, num_reads=5, seed=0)
    chains = inspector_embedding(data)
    assert {v: sorted(c) for v, c in chains.items()} == {v: sorted(c) for v, c in result.embedding.items()}
    assert 0.0 <= data["qcl"]["preview_chain_break_fraction"] <= 1.0
    fig = embedding_view_from_inspector(data, bqm=bqm)
    used = next(t for t in fig.data if t.name == "used qubits")
    assert len(used.x) == result.qubits_used


def test_zoom_frames_the_used_qubits():
    bqm = dimod.generators.gnp_random_bqm(6, 0.8, "BINARY", random_state=2)
    result = find_embedding(bqm, "pegasus", "clique", seed=0)
    data = preview_inspector_data(bqm, result.embedding, "pegasus", num_reads=3, seed=0)
    whole = embedding_view_from_inspector(data, bqm=bqm)
    zoomed = embedding_view_from_inspector(data, bqm=bqm, zoom=True)
    assert whole.layout.xaxis.range is None
    used = next(t for t in zoomed.data if t.name == "used qubits")
    lo, hi = zoomed.layout.xaxis.range
    assert lo <= min(used.x) and max(used.x) <= hi
    unused = next(t for t in zoomed.data if t.name == "unused qubits")
    assert hi - lo < 0.5 * (max(unused.x) - min(unused.x))


def _preview():
    bqm = dimod.generators.gnp_random_bqm(5, 0.8, "BINARY", random_state=3)
    result = find_embedding(bqm, "pegasus", "clique", seed=0)
    return preview_inspector_data(bqm, result.embedding, "pegasus", num_reads=3, seed=0)


def test_opening_in_the_inspector_app_needs_the_app(monkeypatch):
    import importlib.util

    from core.errors import UnavailableError
    from core.inspect import inspector_app_available, open_in_inspector

    assert inspector_app_available() == (importlib.util.find_spec("dwave._inspectorapp") is not None)
    monkeypatch.setattr("core.inspect.inspector_app_available", lambda: False)
    with pytest.raises(UnavailableError, match="dwave install inspector"):
        open_in_inspector(_preview())


def test_open_in_inspector_hands_the_problem_to_the_app(monkeypatch):
    """The app itself is closed source and not installed here: check what reaches it."""
    from dwave.inspector import storage

    from core.errors import InvalidInputError
    from core.inspect import open_in_inspector

    opened = []

    def fake_open_problem(problem_id, block="once", timeout=None):
        opened.append((problem_id, block))
        return f"http://127.0.0.1:18000/?problemId={problem_id}"

    monkeypatch.setattr("core.inspect.inspector_app_available", lambda: True)
    monkeypatch.setattr("dwave.inspector.open_problem", fake_open_problem)
    data = _preview()
    url = open_in_inspector(data)
    problem_id = data["details"]["id"]
    assert opened == [(problem_id, "never")]
    assert url.endswith(problem_id)
    stored = storage.problem_store[problem_id]
    assert stored["data"] == data["data"] and stored["answer"] == data["answer"]
    assert "qcl" not in stored and "rel" not in stored
    assert "rel" in data and "qcl" in data  # the caller's data is left whole
    with pytest.raises(InvalidInputError):
        open_in_inspector({"qcl": {}})
