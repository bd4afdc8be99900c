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
