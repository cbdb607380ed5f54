"""Atomic file writes and the project's error type for unreadable files.

Every file the project writes goes through :func:`atomic_write`: the bytes go
to a temporary file in the target's folder, are flushed to disk, and the
temporary file is renamed over the target. A crash at any moment therefore
leaves either the old file or the complete new one, never a broken one.
"""

import contextlib
import errno
import os
import tempfile
from pathlib import Path


class DataError(ValueError):
    """A dataset, dictionary or model file that cannot be used as it is."""


def _umask():
    # Linux reports the umask in /proc; elsewhere os.umask can only read it by
    # setting it, which another thread could observe for a moment.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_folder(path):
    """Raise a clear error unless the folder that will hold ``path`` is writable."""
    if Path(path).is_dir():
        raise IsADirectoryError(
            f"output path {str(path)!r} is a folder; pass a file name such as "
            f"{str(Path(path) / 'lstm_model.npz')!r}"
        )
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"output folder {str(folder)!r} for {str(path)!r} does not exist; "
            "create it or choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"output folder {str(folder)!r} for {str(path)!r} is not writable; "
            "choose another path"
        )


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file that replaces ``path`` only when the block succeeds.

    The temporary file lives in the same folder (so the final rename cannot
    cross file systems) and is removed when the block raises, for example when
    the disk fills; the previous ``path``, if any, is then left untouched. The
    new file gets the permissions of the file it replaces, or those the umask
    allows for a new file.

    Raises
    ------
    OSError
        With the same ``errno`` when writing fails (no space left, I/O
        error); the message names ``path`` and says that the previous file
        was kept.
    """
    path = Path(path)
    check_output_folder(path)
    # A process killed with SIGKILL leaves this temporary file behind; resuming
    # training removes those of its model and checkpoint.
    fd, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent
    )
    try:
        try:
            permissions = path.stat().st_mode & 0o777
        except OSError:
            permissions = 0o666 & ~_umask()
        with os.fdopen(fd, mode) as handle:
            os.fchmod(handle.fileno(), permissions)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO,
                                                          errno.EFBIG, errno.EROFS):
            raise OSError(
                error.errno,
                f"could not write {str(path)!r}: {error.strerror or error}; the previous "
                "file, if any, was kept. Free some disk space or choose another path",
            ) from error
        raise
    _fsync_folder(path.resolve().parent)
