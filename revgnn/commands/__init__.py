"""The ``revgnn`` subcommands, one module each (``params``, ``train``, ``data``, ``memory``, ``evaluate``), with
``add_parser(subparsers)`` and ``run(args) -> int``; :mod:`revgnn.cli` builds the parser from them.

Imports: everything below (``revgnn.nn``, ``data``, ``training``, ``measure``, ``official``), inside ``run`` where it
needs torch, so that ``revgnn --help`` answers without it; never the book.
"""
