"""Tests of containers/: the Dockerfile's promises read as text, the Apptainer definition checked by a small
parser (Apptainer itself cannot be installed here), and the real build: containers/build-test.sh builds the
Dockerfile with podman on a debootstrapped base and runs ``xrdbatch selfcheck`` and a tiny job in the image.

The build test is marked ``container`` (and ``slow``, about 10-15 minutes on 2 cores, most of it pip downloading
wheels into the image); it skips with the reason on a machine without podman/debootstrap and fails in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "containers"
DOCKERFILE = (CONTAINERS / "Dockerfile").read_text()


# ------------------------------------------------------------------------------- Dockerfile ----
def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_pins_its_base_as_a_build_argument():
    ins = _instructions(DOCKERFILE)
    assert ins[0][0] == "ARG" and ins[0][1].startswith("BASE_IMAGE=")
    default = ins[0][1].split("=", 1)[1]
    assert re.search(r"(@sha256:[0-9a-f]{64}|:bookworm-\d{8}(-slim)?)$", default), \
        f"base image {default!r} is not pinned (dated tag or digest)"
    assert ins[1] == ("FROM", "${BASE_IMAGE}")


def test_dockerfile_runs_as_non_root_with_xrdbatch_entrypoint_and_selfcheck_healthcheck():
    ins = dict(_instructions(DOCKERFILE)[::-1])  # last occurrence wins, as in a build
    assert ins["USER"] not in ("root", "0")
    assert ins["ENTRYPOINT"] == '["xrdbatch"]'
    assert "xrdbatch" in ins["HEALTHCHECK"] and "selfcheck" in ins["HEALTHCHECK"]


def test_dockerfile_uses_the_ca_only_as_a_build_secret():
    runs = [args for word, args in _instructions(DOCKERFILE) if word == "RUN"]
    pip_runs = [r for r in runs if "pip install" in r]
    assert pip_runs and all("--mount=type=secret,id=ca" in r for r in pip_runs)
    for word, args in _instructions(DOCKERFILE):
        if word in ("COPY", "ADD", "ENV"):
            assert "ca-certificates.crt" not in args and "PIP_CERT" not in args and "secrets" not in args, \
                f"{word} {args}: the proxy CA must never be baked into the image"


def _requirement_names(lines) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-"))
    return names


def test_lock_file_pins_every_runtime_dependency():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (CONTAINERS / "requirements.lock").read_text().splitlines()
    pinned = [l for l in lock if l.strip() and not l.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", l) for l in pinned), "lock lines must be name==version"
    missing = _requirement_names(project["dependencies"]) - _requirement_names(pinned)
    assert not missing, (f"containers/requirements.lock does not pin {sorted(missing)} (new in pyproject.toml); "
                         "refresh it with the command in its header")


# ------------------------------------------------------------------- Apptainer definition ----
BOOTSTRAP_AGENTS = {"docker", "docker-daemon", "docker-archive", "oci", "oci-archive", "localimage", "library",
                    "shub", "oras", "debootstrap", "yum", "zypper", "busybox", "scratch", "arch"}
SECTIONS = {"setup", "files", "post", "environment", "runscript", "startscript", "test", "labels", "help",
            "arguments"}
NEEDS_FROM = BOOTSTRAP_AGENTS - {"scratch", "busybox"}


class DefinitionError(ValueError):
    pass


def parse_definition(text: str) -> tuple[dict, dict]:
    """Parse an Apptainer definition into (header dict, {section: body}); raise DefinitionError when invalid.

    Header: ``Key: value`` lines before the first section, ``Bootstrap`` first and one of the known agents,
    ``From`` where the agent needs one. Sections: ``%name`` lines from the known set (``%app*`` allowed), each at
    most once; a section line must start at column 0.
    """
    header, sections, current = {}, {}, None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if current is None:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line.startswith("%"):
                m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*):\s*(\S.*)", line)
                if not m:
                    raise DefinitionError(f"line {n}: header line {line!r} is not 'Key: value'")
                if not header and m.group(1).lower() != "bootstrap":
                    raise DefinitionError(f"line {n}: the header must start with Bootstrap, got {m.group(1)!r}")
                if m.group(1).lower() in {k.lower() for k in header}:
                    raise DefinitionError(f"line {n}: header key {m.group(1)} given twice")
                header[m.group(1)] = m.group(2).strip()
                continue
        if line.startswith("%"):
            name = line[1:].split()[0] if len(line) > 1 else ""
            if name not in SECTIONS and not name.startswith("app"):
                raise DefinitionError(f"line {n}: unknown section %{name}; known: {sorted(SECTIONS)}")
            if name in sections:
                raise DefinitionError(f"line {n}: section %{name} appears twice")
            current = name
            sections[name] = []
        elif current is not None:
            sections[current].append(line)
    if "Bootstrap" not in header:
        raise DefinitionError("no 'Bootstrap:' header line")
    if header["Bootstrap"] not in BOOTSTRAP_AGENTS:
        raise DefinitionError(f"Bootstrap agent {header['Bootstrap']!r} unknown; valid: {sorted(BOOTSTRAP_AGENTS)}")
    if header["Bootstrap"] in NEEDS_FROM and not header.get("From"):
        raise DefinitionError(f"Bootstrap {header['Bootstrap']} needs a 'From:' line")
    return header, {k: "\n".join(v).strip() for k, v in sections.items()}


def test_apptainer_definition_builds_from_the_oci_image_and_tests_with_selfcheck():
    header, sections = parse_definition((CONTAINERS / "xrdbatch.def").read_text())
    assert header["Bootstrap"] in {"docker-archive", "docker-daemon", "localimage", "oci-archive"}
    assert {"test", "runscript", "environment", "labels", "help"} <= set(sections)
    assert "xrdbatch selfcheck" in sections["test"]
    assert re.search(r"exec xrdbatch \"\$@\"", sections["runscript"])
    for body in (sections["test"], sections["runscript"], sections["environment"]):
        p = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("text,match", [
    ("From: x\nBootstrap: docker\n", "must start with Bootstrap"),
    ("Bootstrap: dockr\nFrom: x\n", "agent 'dockr' unknown"),
    ("Bootstrap: docker-archive\n%test\n  true\n", "needs a 'From:'"),
    ("Bootstrap: docker\nFrom: x\n%tests\n true\n", "unknown section %tests"),
    ("Bootstrap: docker\nFrom: x\n%test\n true\n%test\n false\n", "appears twice"),
    ("Bootstrap docker\n", "not 'Key: value'"),
])
def test_definition_checker_rejects_broken_definitions(text, match):
    with pytest.raises(DefinitionError, match=match):
        parse_definition(text)


@given(st.sampled_from(sorted(NEEDS_FROM)), st.text("abcdefgh:/._-0123456789", min_size=1, max_size=20),
       st.lists(st.sampled_from(sorted(SECTIONS)), unique=True, max_size=5))
def test_definition_checker_accepts_well_formed_definitions(agent, source, names):
    text = f"Bootstrap: {agent}\nFrom: {source}\n" + "".join(f"\n%{s}\n    echo {s}\n" for s in names)
    header, sections = parse_definition(text)
    assert header == {"Bootstrap": agent, "From": source.strip()} and set(sections) == set(names)


# ----------------------------------------------------------------------------- real build ----
@pytest.mark.container
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_build_test_script_builds_the_image_and_runs_selfcheck_and_a_job_in_it(tmp_path):
    missing = [t for t in ("podman", "debootstrap") if shutil.which(t) is None]
    if missing:
        reason = f"{missing} not installed; `.ci/system-deps` installs podman, runc and debootstrap"
        if os.environ.get("CI") or os.environ.get("XRDBATCH_REQUIRE_CONTAINER"):
            pytest.fail(f"CI must run the container build test: {reason}")
        pytest.skip(reason)
    if os.geteuid() != 0:
        pytest.skip("the build test runs podman with its own storage and debootstrap as root (CI runs as root)")
    env = dict(os.environ, XRDBATCH_BUILD_DIR=str(tmp_path / "build"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "build-test.log"
    with open(log, "w") as fh:
        p = subprocess.run(["bash", str(CONTAINERS / "build-test.sh")], cwd=ROOT, env=env, stdout=fh,
                           stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    print("\n".join(l for l in text.splitlines() if l.startswith(("===", "ok  ", "FAIL", "selfcheck:"))))
    assert p.returncode == 0, f"containers/build-test.sh failed ({p.returncode}):\n{text[-6000:]}"
    assert "selfcheck: all checks passed" in text
    assert "container build test passed" in text
    assert not (tmp_path / "build").exists(), "build-test.sh must remove its work directory"
