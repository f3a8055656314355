"""Where the data sets live on disk, and the errors a failed download can raise.

Data is looked up under :func:`data_dir`: an explicit ``root``, else ``$NABLATAU_DATA_DIR``, else ``./data``.
"""

from __future__ import annotations

import http.client
import os
import pathlib
import tarfile

from ..errors import DataError

PathLike = str | os.PathLike

ENV_VAR = "NABLATAU_DATA_DIR"

# Errors a failed download can raise: network errors (URLError is an OSError), truncated HTTP bodies,
# torchvision's RuntimeError for a checksum mismatch, and broken archives.
_DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, RuntimeError, tarfile.TarError, DataError)


def data_dir(path: PathLike | None = None) -> pathlib.Path:
    """Return the data root: ``path`` if given, else ``$NABLATAU_DATA_DIR``, else ``./data``."""
    if path is not None:
        return pathlib.Path(path).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path("data")
