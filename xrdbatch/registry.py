"""Model registry on shared storage: push, pull and list model bundles over fsspec.

A model bundle is a directory with ``manifest.json`` whose ``"files"`` maps every other file of the bundle
to its sha256 (written by :mod:`xrdbatch.bundle`). The registry only moves bytes and checks hashes; it never
loads, let alone unpickles, a model (bundles hold skops files, loaded by :func:`xrdbatch.bundle.load_bundle`;
pickle-like files are refused outright).

Layout under a registry URL (a shared path, ``s3://bucket/prefix``, or any fsspec URL)::

    URL/NAME/VERSION/manifest.json
    URL/NAME/VERSION/<bundle files>
    URL/NAME/VERSION/PUBLISHED.json     <- written last: the version exists only once this is there

Publishing is atomic: the files are uploaded into the version folder, which no reader looks at while it has no
``PUBLISHED.json`` (the temporary name), every uploaded file is read back and its sha256 checked, and only then
the marker -- one small object holding the manifest's own sha256 -- is written (one PUT on object stores; a
rename on file systems). A crashed push leaves an invisible folder that the next push of that version
overwrites. Versions are immutable. ``pull`` checks the manifest against the marker and every file against
the manifest, in a temporary folder that is renamed into place only when all hashes agree.

S3-compatible servers: credentials come from the usual environment (``AWS_ACCESS_KEY_ID``, profiles, ...);
the endpoint from ``endpoint_url=`` or ``$XRDBATCH_S3_ENDPOINT_URL`` (or botocore's ``$AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from xrdbatch.hashes import bytes_sha256 as sha256_bytes
from xrdbatch.hashes import file_sha256 as sha256_file

MANIFEST = "manifest.json"
MARKER = "PUBLISHED.json"
ENDPOINT_ENV = "XRDBATCH_S3_ENDPOINT_URL"
CACHE_ENV = "XRDBATCH_CACHE_DIR"

#: File endings that could unpickle code when loaded; a bundle holding one is refused.
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle", ".npy.pkl")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RegistryError(RuntimeError):
    """A refused or failed registry operation; the message says what, where, and what to do next."""


# --------------------------------------------------------------------------- helpers ----


def storage_options(url: str, endpoint_url: str | None = None) -> dict:
    """fsspec storage options for ``url``: an S3 endpoint from the argument or the environment."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV)
    if protocol in ("s3", "s3a") and endpoint_url:
        return {"client_kwargs": {"endpoint_url": endpoint_url}}
    return {}


def _filesystem(url: str, endpoint_url: str | None = None):
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **storage_options(url, endpoint_url))
    try:
        fs.invalidate_cache()
    except Exception:  # noqa: BLE001 - some filesystems have no listing cache
        pass
    return fs, root.rstrip("/")


def _join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


def manifest_files(manifest: dict, where: str = "manifest.json") -> dict:
    """``{relative name: sha256}`` from a manifest (``"files"`` may map to hashes or to ``{"sha256": ...}``)."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise RegistryError(f"{where}: expected a 'files' mapping of file name -> sha256, received "
                            f"{type(files).__name__}; is this an xrdbatch model bundle?")
    out = {}
    for name, value in files.items():
        digest = value.get("sha256") if isinstance(value, dict) else value
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise RegistryError(f"{where}: file {name!r} has no sha256 (received {value!r})")
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts or name in (MANIFEST, MARKER):
            raise RegistryError(f"{where}: refusing file name {name!r} (absolute, '..' or reserved)")
        if name.lower().endswith(UNSAFE_SUFFIXES):
            raise RegistryError(f"{where}: refusing {name!r}: pickle-like files can run code when loaded; "
                                "bundles hold skops/JSON files only")
        out[name] = digest
    return out


def verify_bundle(path) -> dict:
    """Check every file of a local bundle against its manifest; return the manifest.

    Raises
    ------
    RegistryError
        Naming the first file whose sha256 differs (expected and received) or that is missing.
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise RegistryError(f"{path}: no {MANIFEST}; expected a model bundle directory written by "
                            "'xrdbatch train'")
    manifest = json.loads(manifest_path.read_text())
    for name, expected in manifest_files(manifest, str(manifest_path)).items():
        file = path / name
        if not file.is_file():
            raise RegistryError(f"{path}: {name} is listed in the manifest but missing")
        received = sha256_file(file)
        if received != expected:
            raise RegistryError(f"{file}: sha256 {received} does not match the manifest's {expected}; the "
                                "bundle was altered or damaged -- retrain or pull it again")
    return manifest


def _version_key(version: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-_]", version)]


# --------------------------------------------------------------------------- listing ----
def list_models(url: str, *, endpoint_url: str | None = None) -> list[dict]:
    """Every published version under a registry URL (or under one model's URL).

    Returns
    -------
    list of dict
        ``name, version, url, created_utc, manifest_sha256, n_files, size_bytes``, sorted by name then version.
    """
    fs, root = _filesystem(url, endpoint_url)
    markers = fs.glob(_join(root, "*", "*", MARKER)) + fs.glob(_join(root, "*", MARKER))
    if fs.exists(_join(root, MARKER)):
        markers.append(_join(root, MARKER))
    rows = []
    for marker in sorted(set(markers)):
        try:
            info = json.loads(fs.cat_file(marker))
        except (ValueError, OSError):
            continue
        rel = marker[len(root):].strip("/").rsplit("/", 1)[0]
        rows.append({
            "name": info.get("name"), "version": info.get("version"),
            "url": _join(url, rel) if rel else url.rstrip("/"),
            "created_utc": info.get("created_utc"), "manifest_sha256": info.get("manifest_sha256"),
            "n_files": len(info.get("files", {})), "size_bytes": info.get("size_bytes"),
        })
    rows.sort(key=lambda r: (str(r["name"]), _version_key(str(r["version"]))))
    return rows


def resolve(url: str, *, endpoint_url: str | None = None) -> str:
    """The URL of one published version: ``url`` itself, or the latest version when ``url`` names a model."""
    fs, root = _filesystem(url, endpoint_url)
    if fs.exists(_join(root, MARKER)):
        return url.rstrip("/")
    versions = [r for r in list_models(url, endpoint_url=endpoint_url) if r["url"].count("/") ==
                url.rstrip("/").count("/") + 1]
    if not versions:
        raise RegistryError(f"{url}: no published model version here (no {MARKER}); list what exists with "
                            "'xrdbatch models list <registry URL>'")
    return versions[-1]["url"]


# ------------------------------------------------------------------------------ push ----
def push(bundle_dir, url: str, *, name: str | None = None, version: str | None = None,
         endpoint_url: str | None = None) -> str:
    """Publish a local bundle as ``URL/NAME/VERSION``; return that URL.

    Parameters
    ----------
    bundle_dir : path
        Local model bundle (verified against its manifest first).
    url : str
        Registry root (path, ``s3://bucket/prefix``, any fsspec URL).
    name : str, optional
        Model name; default the manifest's ``name`` or the bundle folder's name.
    version : str, optional
        Default: one more than the highest integer version already published under the name.
    """
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    files = manifest_files(manifest)
    name = name or manifest.get("name") or bundle_dir.resolve().name
    if not _NAME_RE.match(name):
        raise RegistryError(f"model name {name!r}: use letters, digits, '.', '_' and '-' (max 128)")
    fs, root = _filesystem(url, endpoint_url)
    if version is None:
        existing = [r["version"] for r in list_models(_join(url, name), endpoint_url=endpoint_url)]
        version = str(max([int(v) for v in existing if str(v).isdigit()] + [0]) + 1)
    version = str(version)
    if not _NAME_RE.match(version):
        raise RegistryError(f"version {version!r}: use letters, digits, '.', '_' and '-'")
    target = _join(root, name, version)
    if fs.exists(_join(target, MARKER)):
        raise RegistryError(f"{_join(url, name, version)} is already published and versions are immutable; "
                            "push with another --version")
    # 1. upload into the (still invisible) version folder
    manifest_bytes = (bundle_dir / MANIFEST).read_bytes()
    for rel in [*files, MANIFEST]:
        remote = _join(target, rel)
        parent = remote.rsplit("/", 1)[0]
        fs.makedirs(parent, exist_ok=True)
        fs.put_file(str(bundle_dir / rel), remote)
    # 2. read back and verify every byte
    for rel, expected in [*files.items(), (MANIFEST, sha256_bytes(manifest_bytes))]:
        received = sha256_bytes(fs.cat_file(_join(target, rel)))
        if received != expected:
            raise RegistryError(f"{_join(url, name, version, rel)}: uploaded copy has sha256 {received}, expected "
                                f"{expected}; storage is unreliable -- the version stays unpublished, retry")
    # 3. make it visible: the marker, last
    marker = {
        "name": name, "version": version, "manifest_sha256": sha256_bytes(manifest_bytes), "files": files,
        "size_bytes": sum((bundle_dir / rel).stat().st_size for rel in files) + len(manifest_bytes),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    payload = json.dumps(marker, indent=1, sort_keys=True).encode()
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        tmp = _join(target, f".{MARKER}.{uuid.uuid4().hex}")
        fs.pipe_file(tmp, payload)
        fs.mv(tmp, _join(target, MARKER))
    else:
        fs.pipe_file(_join(target, MARKER), payload)
    return _join(url, name, version)


# ------------------------------------------------------------------------------ pull ----
def pull(url: str, dest, *, endpoint_url: str | None = None, overwrite: bool = False) -> Path:
    """Download one published version (or a model's latest) into ``dest``, verifying every sha256.

    The files land in a temporary sibling folder that is renamed to ``dest`` only when the manifest matches
    the published marker and every file matches the manifest.

    Raises
    ------
    RegistryError
        On any hash mismatch (naming the file, expected and received), a missing file, or a non-empty ``dest``.
    """
    url = resolve(url, endpoint_url=endpoint_url)
    fs, root = _filesystem(url, endpoint_url)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise RegistryError(f"{dest} exists and is not empty; choose a new folder or pass overwrite")
    marker = json.loads(fs.cat_file(_join(root, MARKER)))
    manifest_bytes = fs.cat_file(_join(root, MANIFEST))
    received = sha256_bytes(manifest_bytes)
    if received != marker.get("manifest_sha256"):
        raise RegistryError(f"{_join(url, MANIFEST)}: sha256 {received} does not match the published "
                            f"{marker.get('manifest_sha256')}; the manifest was altered after publishing -- "
                            "refusing it; ask the owner to push a new version")
    files = manifest_files(json.loads(manifest_bytes), _join(url, MANIFEST))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        (tmp / MANIFEST).write_bytes(manifest_bytes)
        for rel, expected in files.items():
            local = tmp / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get_file(_join(root, rel), str(local))
            except (FileNotFoundError, OSError) as exc:
                raise RegistryError(f"{_join(url, rel)}: listed in the manifest but cannot be read ({exc})") \
                    from None
            got = sha256_file(local)
            if got != expected:
                raise RegistryError(f"{_join(url, rel)}: sha256 {got} does not match the manifest's {expected}; "
                                    "the stored copy was altered or damaged -- refusing the model")
        if dest.exists() and overwrite:
            shutil.rmtree(dest)
        elif dest.exists() and not any(dest.iterdir()):
            dest.rmdir()
        os.replace(tmp, dest)  # fails (ENOTEMPTY) if another process put a copy there meanwhile
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def cache_dir() -> Path:
    """``$XRDBATCH_CACHE_DIR`` or ``~/.cache/xrdbatch``; models live in ``models/`` below it."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "xrdbatch") / "models"


def fetch(url: str, *, endpoint_url: str | None = None, cache: Path | None = None) -> Path:
    """A verified local copy of a published model, pulled once into the cache (keyed by manifest hash)."""
    url = resolve(url, endpoint_url=endpoint_url)
    fs, root = _filesystem(url, endpoint_url)
    marker = json.loads(fs.cat_file(_join(root, MARKER)))
    key = f"{marker.get('name', 'model')}-{marker.get('version', '0')}-{marker['manifest_sha256'][:16]}"
    local = Path(cache or cache_dir()) / key
    if local.exists():
        try:
            verify_bundle(local)
            return local
        except RegistryError:
            shutil.rmtree(local, ignore_errors=True)
    try:
        return pull(url, local, endpoint_url=endpoint_url)
    except OSError:
        # another process (a SLURM array task, a Dask worker) pulled the same model at the same time
        if local.exists():
            verify_bundle(local)
            return local
        raise


def is_url(text: str) -> bool:
    """True for ``scheme://...`` strings (anything but a plain local path)."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", str(text)))
