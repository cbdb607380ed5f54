"""Download a file with progress, a checksum, and an atomic rename."""

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from lstm_tutorial.progress import Progress

logger = logging.getLogger(__name__)

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
BLOCK_SIZE = 1 << 20
TIMEOUT_SECONDS = 30


class DownloadError(OSError):
    """A failed download. The message explains how to use a local copy instead."""


def download(url, destination, *, sha256=None, timeout=TIMEOUT_SECONDS):
    """Download ``url`` to ``destination`` and return ``destination``.

    The bytes go to a temporary file in the destination folder. Only when the
    transfer is complete and its SHA-256 matches ``sha256`` (when given) is the
    file renamed to ``destination``; on any failure it is removed.

    Raises
    ------
    DownloadError
        On a network failure, an HTTP error, a short transfer or a checksum
        mismatch. The message names the URL and how to pass a local copy.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    local_hint = (f"download it by other means and pass it with --dataset PATH, or place it at "
                  f"{str(destination)!r}")
    logger.info("download url=%s to=%s", url, destination)
    fd, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part",
                                     dir=destination.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as handle:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    total = int(response.headers.get("Content-Length") or 0)
                    received = 0
                    with Progress(total, "download", "B", logger) as progress:
                        for block in iter(lambda: response.read(BLOCK_SIZE), b""):
                            handle.write(block)
                            digest.update(block)
                            received += len(block)
                            progress.update(len(block))
            except (urllib.error.URLError, OSError, ValueError) as error:
                reason = getattr(error, "reason", error)
                raise DownloadError(
                    f"could not download {url}: {reason}. Without network access, {local_hint}"
                ) from error
            if total and received != total:
                raise DownloadError(
                    f"download of {url} stopped after {received} of {total} bytes; "
                    f"try again, or {local_hint}"
                )
            handle.flush()
            os.fsync(handle.fileno())
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DownloadError(
                f"download of {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; "
                f"the file is damaged or not the expected one. Try again, or {local_hint}"
            )
        os.replace(temp_name, destination)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    logger.info("download done path=%s bytes=%d", destination, destination.stat().st_size)
    return destination
