"""Deploy/docker-compose.yml and Deploy/kubernetes.yaml, checked against their
schemas with the tools scripts/bootstrap.sh installs into .venv, offline:
check-jsonschema's vendored Compose Specification schema and
kubernetes-validate's bundled Kubernetes schemas (strict: unknown fields are
errors). Each check is also shown to refuse a broken copy, and both files must
name the image `make image` builds.
"""

import pathlib
import subprocess
import sys

import pytest
import yaml
from conftest import IMAGE, ROOT

BIN = pathlib.Path(sys.executable).parent
COMPOSE = ROOT / "Deploy" / "docker-compose.yml"
KUBERNETES = ROOT / "Deploy" / "kubernetes.yaml"


def check_compose(path):
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


def check_kubernetes(path):
    return subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "--no-warn", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_compose_file_matches_the_compose_specification():
    r = check_compose(COMPOSE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_check_refuses_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    doc = yaml.safe_load(COMPOSE.read_text())
    doc["services"]["runner"]["stop_grace_periodd"] = "90s"  # a misspelt key
    doc["services"]["runner"]["ports"] = "127.0.0.1:9464:9464"  # a string, not a list
    broken.write_text(yaml.safe_dump(doc))
    r = check_compose(broken)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "stop_grace_periodd" in r.stdout + r.stderr


def test_kubernetes_manifest_matches_its_schemas():
    r = check_kubernetes(KUBERNETES)
    assert r.returncode == 0, r.stdout + r.stderr
    for kind in ("secret/agent-runner", "configmap/agent-runner-config", "deployment/agent-runner"):
        assert f"passed for resource {kind}" in r.stdout + r.stderr, r.stdout + r.stderr


def break_security_context(container):
    container["securityContext"]["runAsNonRoott"] = True  # unknown field


def break_container_port(container):
    container["ports"][0]["containerPort"] = "9464"  # a string, not an integer


# kubernetes-validate names one error per resource: one break at a time, each named with its path.
@pytest.mark.parametrize("breaks, named", [
    (break_security_context,
     "spec.template.spec.containers.0.securityContext: Additional properties are not allowed ('runAsNonRoott' was unexpected)"),
    (break_container_port, "spec.template.spec.containers.0.ports.0.containerPort: '9464' is not of type 'integer'"),
])
def test_kubernetes_check_refuses_a_broken_manifest(tmp_path, breaks, named):
    docs = list(yaml.safe_load_all(KUBERNETES.read_text()))
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    breaks(deployment["spec"]["template"]["spec"]["containers"][0])
    broken = tmp_path / "kubernetes.yaml"
    broken.write_text(yaml.safe_dump_all(docs))
    r = check_kubernetes(broken)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "did not validate for resource deployment/agent-runner" in r.stdout + r.stderr, r.stdout + r.stderr
    assert named in r.stdout + r.stderr, r.stdout + r.stderr


def test_both_use_the_image_make_image_builds():
    compose = yaml.safe_load(COMPOSE.read_text())
    assert compose["services"]["runner"]["image"] == IMAGE
    docs = [d for d in yaml.safe_load_all(KUBERNETES.read_text()) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == [IMAGE]
    # Never pulled: the image exists only in the node's local storage.
    assert containers[0]["imagePullPolicy"] == "Never"
    # The user the image creates, and Kubernetes' view of it, agree.
    dockerfile = (ROOT / "Deploy" / "Dockerfile").read_text()
    assert "useradd --uid 10001 --gid 10001" in dockerfile
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
