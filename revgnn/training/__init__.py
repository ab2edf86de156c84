"""The training: the protocol of Li et al. (2021) and its loop (``loop``), run control (``runtime``: threads,
signals, the output-folder lock), data-parallel training (``distributed``), atomic run records with their provenance
(``records``) and the size estimate that refuses a step before it cannot fit (``budget``).

Imports: ``revgnn.nn``, ``revgnn.data`` and one another; never ``measure``, the book or the commands, which import
from here. The public names are exported by :mod:`revgnn`; this file loads nothing.
"""
