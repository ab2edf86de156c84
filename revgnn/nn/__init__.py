"""The networks: the reversible engine (``reversible``) and its wrapper for any block (``rev_wrapper``: PyG's
``GroupAddRev`` arguments), GENConv blocks (``layers``) on the fused edge-chunked operator (``fused``) with its native
C++ kernel (``native``), deep equilibrium layers (``deq``) on the fixed-point solvers (``solvers``) and their settings
(``solver_options``), the five ogbn-proteins models (``models``), RevGAT with its attention convolution (``revgat``,
``gat``; ogbn-arxiv), RevGNN with GraphSAGE blocks and its residual baseline (``revsage``; ogbn-products), and their
configurations, presets and parameter counts (``presets``).

Imports: torch, PyTorch Geometric and one another, nothing else of revgnn; every other room may import from here.
The public names are exported by :mod:`revgnn`; this file loads nothing, so ``revgnn --help`` stays free of torch.
"""
