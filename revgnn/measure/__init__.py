"""The measurements: what one training step keeps and its peak (``memory``, Figs. 2-4 of Li et al., 2021), read
from the allocator's event trace (``allocations``), and the whole graph's step cost against its edges (``whole_graph``).

Imports: ``revgnn.nn``, ``revgnn.data``, ``revgnn.training`` (thread policy, provenance, the floor) and one another;
never the book or the commands, which import from here. The public names are exported by :mod:`revgnn`; this file
loads nothing.
"""
