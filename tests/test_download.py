"""Downloads against a real HTTP server on 127.0.0.1."""

import hashlib
import http.server
import threading

import pytest

from lstm_tutorial.datasets import resolve_dataset
from lstm_tutorial.download import DownloadError, download

PAYLOAD = b"review bytes " * 50000


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/archive.tar.gz":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def leftovers(folder):
    return [path.name for path in folder.iterdir() if path.name.startswith(".")]


def test_download_verifies_and_renames(server, tmp_path):
    target = tmp_path / "archive.tar.gz"
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert download(f"{server}/archive.tar.gz", target, sha256=digest) == target
    assert target.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == []


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    target = tmp_path / "archive.tar.gz"
    with pytest.raises(DownloadError, match="expected 0000"):
        download(f"{server}/archive.tar.gz", target, sha256="0000")
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_short_transfer_leaves_nothing(server, tmp_path):
    target = tmp_path / "archive.tar.gz"
    with pytest.raises(DownloadError):
        download(f"{server}/short", target)
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_http_error_names_url(server, tmp_path):
    with pytest.raises(DownloadError, match="missing"):
        download(f"{server}/missing", tmp_path / "x")


def test_no_network_explains_local_copy(tmp_path):
    # Nothing listens on port 9 of the loopback address, as on a machine offline.
    with pytest.raises(DownloadError, match="pass it with --dataset PATH"):
        download("http://127.0.0.1:9/aclImdb_v1.tar.gz", tmp_path / "aclImdb_v1.tar.gz",
                 timeout=5)
    assert leftovers(tmp_path) == []


def test_imdb_dataset_downloads_when_missing(server, tmp_path):
    # The served bytes are not an archive: the download succeeds, then
    # preprocessing rejects the file with a clear error.
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(ValueError, match="not a tar archive"):
        resolve_dataset("imdb", tmp_path, url=f"{server}/archive.tar.gz", sha256=digest)
    assert (tmp_path / "aclImdb_v1.tar.gz").read_bytes() == PAYLOAD
