"""Weights for offline nodes: ``faket weights download/info`` and ``FAKET_VGG19_WEIGHTS``.

The download goes through a real HTTP server on the loopback interface (and a file URL)
serving a small file in torchvision's VGG-19 layout; the SHA-256 check is the real one,
against the file's real digest.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from faket.cli.main import main
from faket.errors import FaketError
from faket.pipeline.preflight import resolve_nst_weights
from faket.style.vgg import conv_indices
from faket.style.weights import WEIGHTS_ENV, build_feature_net, download_imagenet


def _small_vgg19_file(path: Path) -> Path:
    """Every conv of VGG-19 in torchvision's layout, each stored as one float broadcast to its
    shape (a stride-0 view): the right layout in a few kilobytes."""
    state = {}
    for index, cin, cout in conv_indices(34):
        value = torch.full((1,), 0.01 * (index + 1))
        state[f"features.{index}.weight"] = value.expand(cout, cin, 3, 3)
        state[f"features.{index}.bias"] = value.expand(cout)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    path = _small_vgg19_file(folder / "vgg19-dcbb9e9d.pth")
    (folder / "vgg16.pth").write_bytes(b"wrong layout, not even a checkpoint")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_small_file_is_small_and_loads_as_vgg19(served):
    _, path, _ = served
    assert path.stat().st_size < 200_000
    net = build_feature_net(path)
    assert float(net.features[28].weight[3, 7, 1, 1]) == pytest.approx(0.29)


def test_download_over_http_checks_the_real_sha256(served, tmp_path):
    _, path, base = served
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    url = f"{base}/vgg19-dcbb9e9d.pth"
    # The published prefix dcbb9e9d is not this small file's: rejected, nothing written.
    with pytest.raises(FaketError, match="SHA-256"):
        download_imagenet(tmp_path / "a.pth", url=url)
    assert not list(tmp_path.iterdir())
    got = download_imagenet(tmp_path, url=url, hash_prefix=digest[:8])
    assert got == tmp_path / "vgg19-dcbb9e9d.pth" and got.read_bytes() == path.read_bytes()
    full = download_imagenet(tmp_path / "full.pth", url=url, hash_prefix=digest)
    assert full.read_bytes() == path.read_bytes()
    # Right hash, wrong layout: refused after the download, before the rename.
    bad = f"{base}/vgg16.pth"
    bad_digest = hashlib.sha256(b"wrong layout, not even a checkpoint").hexdigest()
    with pytest.raises(FaketError, match="not a VGG-19 state dict"):
        download_imagenet(tmp_path / "b.pth", url=bad, hash_prefix=bad_digest)
    assert not (tmp_path / "b.pth").exists()
    with pytest.raises(FaketError, match="could not download"):
        download_imagenet(tmp_path / "c.pth", url=f"{base}/missing.pth", hash_prefix=None)


def test_cli_download_to_a_file_url_then_every_command_uses_it(
    served, tmp_path, monkeypatch, capsys
):
    _, path, _ = served
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    target = tmp_path / "weights" / "vgg19.pth"
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "weights",
                "download",
                "--to",
                str(target),
                "--url",
                path.as_uri(),
                "--sha256",
                digest,
                "-q",
            ]
        )
    assert stop.value.code == 0
    err = capsys.readouterr().err
    assert f"export {WEIGHTS_ENV}={target.resolve()}" in err
    assert target.read_bytes() == path.read_bytes()

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))  # no cached weights
    assert resolve_nst_weights("auto") == "transfer"
    monkeypatch.setenv(WEIGHTS_ENV, str(target))
    assert resolve_nst_weights("auto") == "imagenet"
    net = build_feature_net("imagenet", download=False)
    assert net.weights_id.startswith("imagenet:")
    assert torch.equal(net.features[0].weight, build_feature_net(target).features[0].weight)

    with pytest.raises(SystemExit):
        main(["weights", "info"])
    out = capsys.readouterr().out
    assert f"${WEIGHTS_ENV}: {target}" in out and "now: $FAKET_VGG19_WEIGHTS" in out

    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(FaketError, match=f"{WEIGHTS_ENV}=.*is not a file"):
        build_feature_net("imagenet")


def test_info_without_weights_says_what_would_happen(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(SystemExit):
        main(["weights", "info"])
    out = capsys.readouterr().out
    assert f"{WEIGHTS_ENV}: not set" in out
    assert str(tmp_path / "hub" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in out
    assert "(missing;" in out and "nst.weights auto means random" in out
