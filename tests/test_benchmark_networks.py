"""benchmarks.networks: seed 0's trained network is the shipped one, other seeds differ.

"The shipped one" to within the CPU kernels' rounding (bit for bit where the manifest's training
environment matches; see test_models)."""

import pytest
import torch

from benchmarks.networks import network


@pytest.mark.slow
def test_seed_zero_is_the_shipped_network_and_other_seeds_are_not():
    shipped = network("digits-mlp").state_dict()
    seed0, seed1 = network("digits-mlp", 0).state_dict(), network("digits-mlp", 1).state_dict()
    assert all(torch.allclose(shipped[k], seed0[k], rtol=0, atol=1e-4) for k in shipped)
    assert not all(torch.allclose(shipped[k], seed1[k], rtol=0, atol=1e-2) for k in shipped)
    assert network("digits-mlp", 1) is network("digits-mlp", 1)  # trained once per process
