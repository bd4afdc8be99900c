"""Apply decoded decisions to a copy of a torch model (masks, fake-quant, real removal)."""
