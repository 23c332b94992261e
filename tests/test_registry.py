"""Registry: push / pull / list / tamper refusal on a local folder and on a real S3 server (moto_server)."""

from __future__ import annotations

import hashlib
import json

import pytest

from xrdbatch import registry
from xrdbatch.registry import RegistryError


def make_bundle(path, payload: bytes = b"model-bytes", name: str | None = None):
    """A minimal bundle: two files and a manifest listing their sha256 (the layout bundle.py writes)."""
    path.mkdir(parents=True)
    files = {"model_cs.skops": payload, "meta/features.json": b'{"feature_set": "seed11"}'}
    manifest = {"files": {}, "feature_set": "seed11"}
    if name:
        manifest["name"] = name
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
        manifest["files"][rel] = hashlib.sha256(data).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def s3_endpoint():
    from s3_server import CREDENTIALS, make_bucket, moto_server

    mp = pytest.MonkeyPatch()
    for k, v in CREDENTIALS.items():
        mp.setenv(k, v)
    try:
        with moto_server() as endpoint:
            make_bucket(endpoint, "models")
            yield endpoint
    finally:
        mp.undo()


def _roundtrip(root_url, tmp_path, endpoint=None):
    bundle = make_bundle(tmp_path / "cs-model")
    url1 = registry.push(bundle, root_url, name="cs", endpoint_url=endpoint)
    assert url1.endswith("/cs/1")
    url2 = registry.push(bundle, root_url, name="cs", endpoint_url=endpoint)
    assert url2.endswith("/cs/2")
    registry.push(bundle, root_url, name="lattice", version="2026.1", endpoint_url=endpoint)
    rows = registry.list_models(root_url, endpoint_url=endpoint)
    assert [(r["name"], r["version"]) for r in rows] == [("cs", "1"), ("cs", "2"), ("lattice", "2026.1")]
    assert all(r["n_files"] == 2 for r in rows)
    # versions are immutable
    with pytest.raises(RegistryError, match="immutable"):
        registry.push(bundle, root_url, name="cs", version="1", endpoint_url=endpoint)
    # pull a version, and a model name (= latest)
    out = registry.pull(url1, tmp_path / "pulled", endpoint_url=endpoint)
    assert (out / "model_cs.skops").read_bytes() == b"model-bytes"
    registry.verify_bundle(out)
    assert registry.resolve(root_url.rstrip("/") + "/cs", endpoint_url=endpoint) == url2
    return url1, url2


def _tamper(fs, path, data):
    fs.pipe_file(path, data)


def test_local_push_pull_list_and_tamper(tmp_path):
    root = str(tmp_path / "registry")
    url1, url2 = _roundtrip(root, tmp_path)
    import fsspec

    fs = fsspec.filesystem("file")
    _tamper(fs, url2 + "/model_cs.skops", b"evil")
    with pytest.raises(RegistryError, match="sha256 .* does not match"):
        registry.pull(url2, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # nothing half-pulled
    # a rewritten manifest (hashes updated to the evil file) is caught by the published marker
    manifest = json.loads(fs.cat_file(url2 + "/manifest.json"))
    manifest["files"]["model_cs.skops"] = hashlib.sha256(b"evil").hexdigest()
    _tamper(fs, url2 + "/manifest.json", json.dumps(manifest).encode())
    with pytest.raises(RegistryError, match="altered after publishing"):
        registry.pull(url2, tmp_path / "bad2")


def test_unpublished_version_is_invisible(tmp_path):
    root = tmp_path / "registry"
    (root / "cs" / "7").mkdir(parents=True)
    (root / "cs" / "7" / "manifest.json").write_text("{}")  # a crashed push: no marker
    assert registry.list_models(str(root)) == []
    with pytest.raises(RegistryError, match="no published model version"):
        registry.pull(str(root / "cs" / "7"), tmp_path / "x")


def test_refuses_pickles_and_corrupt_local_bundles(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    (bundle / "model.pkl").write_bytes(b"\x80\x04")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["model.pkl"] = hashlib.sha256(b"\x80\x04").hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="pickle"):
        registry.push(bundle, str(tmp_path / "reg"))
    bundle2 = make_bundle(tmp_path / "b2")
    (bundle2 / "model_cs.skops").write_bytes(b"changed")
    with pytest.raises(RegistryError, match="does not match"):
        registry.push(bundle2, str(tmp_path / "reg"))


def test_fetch_caches_by_manifest_hash(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    url = registry.push(make_bundle(tmp_path / "m"), str(tmp_path / "reg"), name="m")
    first = registry.fetch(url)
    assert first.parent == tmp_path / "cache" / "models"
    (first / "model_cs.skops").write_bytes(b"corrupted in cache")
    second = registry.fetch(url)  # re-verified, re-pulled
    assert second == first and (second / "model_cs.skops").read_bytes() == b"model-bytes"


@pytest.mark.s3
def test_s3_push_pull_list_and_tamper(s3_endpoint, tmp_path):
    root = "s3://models/team"
    url1, url2 = _roundtrip(root, tmp_path, endpoint=s3_endpoint)
    fs, _ = registry._filesystem(root, s3_endpoint)
    _tamper(fs, url1.removeprefix("s3://") + "/model_cs.skops", b"evil")
    with pytest.raises(RegistryError, match="does not match"):
        registry.pull(url1, tmp_path / "bad", endpoint_url=s3_endpoint)
    assert not (tmp_path / "bad").exists()


@pytest.mark.s3
def test_s3_endpoint_from_environment(s3_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.ENDPOINT_ENV, s3_endpoint)
    url = registry.push(make_bundle(tmp_path / "e"), "s3://models/env", name="e")
    assert [r["url"] for r in registry.list_models("s3://models/env")] == [url]


@pytest.mark.s3
def test_cli_models_against_s3(s3_endpoint, tmp_path, capsys):
    from xrdbatch import cli

    bundle = make_bundle(tmp_path / "cli-model")
    ep = ["--endpoint-url", s3_endpoint]
    assert cli.main(["models", *ep, "push", str(bundle), "s3://models/cli", "--version", "0.1"]) == 0
    url = capsys.readouterr().out.strip()
    assert url == "s3://models/cli/cli-model/0.1"
    assert cli.main(["models", *ep, "list", "s3://models/cli"]) == 0
    assert "cli-model\t0.1\t" in capsys.readouterr().out
    assert cli.main(["models", *ep, "pull", "s3://models/cli/cli-model", str(tmp_path / "got")]) == 0
    registry.verify_bundle(tmp_path / "got")
    assert cli.main(["models", *ep, "push", str(bundle), "s3://models/cli", "--version", "0.1"]) == 2
    assert "immutable" in capsys.readouterr().err
