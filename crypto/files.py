"""Atomic, private file writes for secret material (private keys)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_private"]

_PRIVATE_MODE = 0o600


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with file mode 0o600.

    The bytes go to a temporary file in the same directory which is then
    renamed over ``path``, so readers never see a half-written key and the
    secret is never, even briefly, readable by other users.
    """
    target = Path(path)
    # mkstemp creates the file with 0o600 already; the temp file must live in
    # the target's directory so os.replace is a same-filesystem atomic rename.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # Explicit chmod documents the intent and guards against platforms
            # where mkstemp's default mode differs.
            os.chmod(tmp_name, _PRIVATE_MODE)
            handle.write(data)
            handle.flush()
            # fsync before rename: otherwise a crash can leave an empty key file.
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself; best effort because not every OS allows it."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
