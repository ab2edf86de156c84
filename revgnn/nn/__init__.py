"""The networks: the reversible engine (``reversible``), GENConv blocks (``layers``) on the fused edge-chunked
operator (``fused``) with its native C++ kernel (``native``), deep equilibrium layers (``deq``) on the fixed-point
solvers (``solvers``) and their settings (``solver_options``), the five models
(``models``), and their configurations, presets and parameter counts (``presets``).

Imports: torch, PyTorch Geometric and one another, nothing else of revgnn; every other room may import from here.
The public names are exported by :mod:`revgnn`; this file loads nothing, so ``revgnn --help`` stays free of torch.
"""
