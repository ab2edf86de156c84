"""``python -m revgnn.book``: execute the notebooks and build the book (see :mod:`revgnn.book.build`)."""
import sys

from .build import main

sys.exit(main())
