"""Run modules for the multi-QUBO methods (one idea per module).

* :mod:`core.methods.common`: sampler plumbing and the shared report skeleton;
* :mod:`core.methods.adaround`: F3 rounding QUBO (``--method adaround``);
* :mod:`core.methods.filter_pruning`: F2 hybrid filter pruning
  (``--method filter-pruning``).

:mod:`core.runs` dispatches to them; the mixed-precision pipeline stays in
``core.runs`` itself.
"""
