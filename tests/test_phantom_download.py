"""Fetching atomic models by PDB ID: a local HTTP server stands in for the RCSB."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.error

import pytest

from faket.errors import FaketError
from faket.phantom import fetch_pdb, is_pdb_id

CIF = "data_1ABC\n_entry.id 1ABC\n"


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/site`` on localhost; yields (url template, request log)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "1ABC.cif").write_text(CIF)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            requests.append(self.path)

    handler = functools.partial(Handler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{{id}}.cif", requests
    httpd.shutdown()
    httpd.server_close()


def test_download_once_then_from_the_cache(server, tmp_path):
    url, requests = server
    path = fetch_pdb("1abc", tmp_path / "cache", url=url)
    assert path == tmp_path / "cache" / "pdb" / "1abc.cif"
    assert path.read_text() == CIF
    assert fetch_pdb("1ABC", tmp_path / "cache", url=url) == path
    assert len(requests) == 1


def test_unknown_id_is_a_one_line_error(server, tmp_path):
    url, _ = server
    with pytest.raises(FaketError, match="HTTP 404") as error:
        fetch_pdb("9xyz", tmp_path / "cache", url=url)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "cache" / "pdb").exists()  # no partial file


def test_offline_says_so_and_how_to_pass_a_file(tmp_path):
    def offline(address, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(FaketError) as error:
        fetch_pdb("1bxn", tmp_path / "cache", opener=offline)
    message = str(error.value)
    assert "offline" in message and "local path" in message and "\n" not in message
    assert not (tmp_path / "cache" / "pdb").exists()


def test_interrupted_download_leaves_no_file(tmp_path):
    class Broken:
        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def read(self, size):
            raise TimeoutError("read timed out")

    with pytest.raises(FaketError, match="offline"):
        fetch_pdb("1bxn", tmp_path / "cache", opener=lambda address, timeout: Broken())
    assert not (tmp_path / "cache" / "pdb").exists()


@pytest.mark.parametrize(
    ("text", "valid"),
    [("1bxn", True), ("4V4R", True), ("pdb_00001bxn", True), ("bxn1", False), ("1bx", False)],
)
def test_pdb_id_pattern(text, valid):
    assert is_pdb_id(text) is valid


def test_malformed_id_is_rejected(tmp_path):
    with pytest.raises(FaketError, match="not a PDB ID"):
        fetch_pdb("ribosome", tmp_path)
