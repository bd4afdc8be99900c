"""benchmarks.networks: seed 0's trained network is the shipped one, other seeds differ."""

import pytest
import torch

from benchmarks.networks import network


@pytest.mark.slow
def test_seed_zero_is_the_shipped_network_and_other_seeds_are_not():
    shipped = network("digits-mlp").state_dict()
    seed0, seed1 = network("digits-mlp", 0).state_dict(), network("digits-mlp", 1).state_dict()
    assert all(torch.equal(shipped[k], seed0[k]) for k in shipped)
    assert not all(torch.equal(shipped[k], seed1[k]) for k in shipped)
    assert network("digits-mlp", 1) is network("digits-mlp", 1)  # trained once per process
