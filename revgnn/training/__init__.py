"""The training: a run's settings (``config``), the protocol of Li et al. (2021) (``protocol``: random partitions,
label reuse, the loss, multi-view prediction), its loop (``loop``: ``fit``), checkpoints and the output folder
(``checkpoints``), run control (``runtime``: threads, signals, the folder lock), data-parallel training
(``distributed``), atomic records with their provenance (``records``) and the size estimate that refuses a step
before it cannot fit (``budget``).

Imports: ``revgnn.nn``, ``revgnn.data`` and one another; never ``measure``, the book or the commands, which import
from here. The public names are exported by :mod:`revgnn`; this file loads nothing.
"""
