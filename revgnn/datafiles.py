"""Dataset files that are never deleted and are named when bad (the data-safety rules of :mod:`revgnn.data`).

Rules: nothing the program did not create in the same call is deleted; a file that cannot be used is named, with
what to do.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path


class DatasetError(ValueError):
    """A dataset's files cannot be used (bad or damaged content, a root that cannot be written, a full disk).

    The message names the file and says what to do. A ``ValueError``, so the CLI reports it in one line (exit 2).
    """


def gzip_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole, valid gzip stream (not gzip, CRC error, truncated, corrupt), or None.

    Decompresses the file once without keeping it (16 MiB at a time); used only after a read failed.
    """
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    except gzip.BadGzipFile as err:
        return "CRC error" if "CRC" in str(err) else f"not gzip: {err}"
    except EOFError:
        return "truncated: the compressed stream ends early"
    except zlib.error as err:
        return f"corrupt compressed data: {err}"
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    return None
