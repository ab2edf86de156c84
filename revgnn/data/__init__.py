"""The data: the dataset registry and loaders (``datasets``) with the files they ship (``shipped/``: Planetoid Cora,
node2vec PPI, with their licences), checked never-deleting file handling (``datafiles``), ogbn-proteins and its raw
reader (``ogbn_proteins``, ``proteins_raw``), the synthetic generator (``synthetic``), random partitions
(``partition``) and the benchmark's metric (``metrics``, ROC-AUC as ogb's evaluator scores it).

Imports: torch, PyTorch Geometric, ogb and one another, nothing else of revgnn; ``training``, ``measure``, the book
and the commands import from here. The public names are exported by :mod:`revgnn`; this file loads nothing.
"""
