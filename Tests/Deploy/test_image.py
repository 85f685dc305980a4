"""The container image `make image` builds (localhost/agent-runner:<version>),
run by podman with Deploy/containers.conf under podman's default seccomp
profile, no capability and no new privileges: it runs as the service user,
prints the build it holds, `doctor` inside reports the job's confinement
working, and a real job runs end to end inside it against the test database on
the host's loopback (`--network host`, MONGODB_URI from scripts/with-db.sh),
publishing to a `file://` remote in a mounted folder that
GIT_LOCAL_REMOTE_ROOTS allows. Skipped where podman is not installed; where it
is, `make test-deploy` builds the image first.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pymongo
import pytest
from conftest import IMAGE, ROOT, version

PODMAN = shutil.which("podman")
SERVICE_UID = 10001

pytestmark = [
    pytest.mark.skipif(PODMAN is None, reason="podman is not installed (scripts/bootstrap.sh installs it)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="make image builds into root's podman storage"),
]


# The flags Deploy/docker-compose.yml gives the runner, on the host's network,
# under podman's default seccomp profile. Podman masks paths under /proc with
# mounts of its own, and the kernel lets no user namespace mount a procfs over
# a masked /proc: `unmask=/proc/*` lets each job have its own /proc (the job's
# mount namespace, as on a host); without it doctor warns (see below).
DEFAULT_MASKS = ["--network", "host", "--init", "--cap-drop", "all", "--security-opt", "no-new-privileges",
                 "--read-only", "--tmpfs", "/tmp:size=64m,mode=1777"]
CONFINED = DEFAULT_MASKS + ["--security-opt", "unmask=/proc/*"]


def podman(*args, timeout=120, check=True):
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(ROOT / "Deploy" / "containers.conf"))
    r = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image():
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail(f"{IMAGE} is missing: run `make image` (make test-deploy does)")
    return IMAGE


@pytest.fixture
def database():
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        pytest.fail("MONGODB_URI is not set: run under scripts/with-db.sh")
    name = "image_" + os.urandom(4).hex()
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    yield uri, name, client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def work_volume():
    """A named volume for /var/lib/agent-runner, as the compose file has: podman
    fills a new volume from the image, so the service user owns it."""
    name = "agent-runner-test-work-" + os.urandom(4).hex()
    podman("volume", "create", name)
    yield ["-v", f"{name}:/var/lib/agent-runner"]
    podman("volume", "rm", "-f", name, check=False)


@pytest.fixture
def remotes():
    """A folder only the service user may use, mounted as /remotes, holding an
    empty bare repository `demo.git` (branch main)."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="agent-runner-remotes-"))
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(top / "demo.git")], check=True)
    for path in [top, *top.rglob("*")]:
        os.lchown(path, SERVICE_UID, SERVICE_UID)
    top.chmod(0o700)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def remote_head(top):
    r = subprocess.run(["git", "-c", "safe.directory=*", "--git-dir", str(top / "demo.git"), "rev-parse", "main"],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def process_users(top, command):
    """The USER column of each process in `podman top NAME user args` whose
    command line starts with `command` (podman's init, `/run/podman-init --
    ...`, does not)."""
    lines = top.splitlines()
    assert lines and lines[0].split() == ["USER", "COMMAND"], top
    users = []
    for line in lines[1:]:
        fields = line.split(None, 1)
        if len(fields) == 2 and fields[1].startswith(command):
            users.append(fields[0])
    return users


def expected_commit():
    """What make's scripts/build-commit.sh wrote for this build."""
    header = ROOT / "Sources" / "CShims" / "build_commit.h"
    if not header.exists():
        return "unknown"
    return re.search(r'"([^"]+)"', header.read_text()).group(1)


def test_image_runs_as_the_service_user_and_says_which_build_it_holds(image):
    commit = expected_commit()
    line = f"{version()} (commit {commit})"
    assert podman("run", "--rm", *CONFINED, image, "--version").stdout.strip() == line
    job = podman("run", "--rm", *CONFINED, "--entrypoint", "/usr/local/bin/agent-runner-job", image, "--version")
    assert job.stdout.strip() == line
    if shutil.which("git") and (ROOT / ".git").exists():
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        assert commit.startswith(head), f"the image holds {commit}, the tree is at {head}: run make image"
    ids = podman("run", "--rm", *CONFINED, "--entrypoint", "/usr/bin/id", image).stdout
    assert ids.startswith(f"uid={SERVICE_UID}(agent-runner) gid={SERVICE_UID}(agent-runner)"), ids
    owners = podman("run", "--rm", *CONFINED, "--entrypoint", "/usr/bin/stat", image, "-c", "%n %u:%g %a",
                    "/var/lib/agent-runner", "/var/lib/agent-runner/work", "/usr/local/bin/agent-runner",
                    "/usr/local/bin/agent-runner-job").stdout.split("\n")
    assert owners[:4] == [f"/var/lib/agent-runner {SERVICE_UID}:{SERVICE_UID} 700",
                          f"/var/lib/agent-runner/work {SERVICE_UID}:{SERVICE_UID} 700",
                          "/usr/local/bin/agent-runner 0:0 755", "/usr/local/bin/agent-runner-job 0:0 755"], owners
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == str(SERVICE_UID)
    assert config["StopSignal"] == "SIGTERM"
    assert config["Entrypoint"] == ["/usr/local/bin/agent-runner"]
    assert inspected["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/agent-runner", "health"]


def test_doctor_inside_reports_the_confinement_working(image, database, work_volume):
    uri, name, _ = database
    r = podman("run", "--rm", *CONFINED, *work_volume,
               "-e", f"MONGODB_URI={uri}", "-e", f"MONGO_DB_NAME={name}", "-e", "GENERATORS=scaffold",
               image, "doctor", check=False, timeout=180)
    lines = r.stdout.splitlines()

    def line(prefix):
        hits = [l for l in lines if l[6:].startswith(prefix)]
        assert hits, f"no '{prefix}' line in:\n{r.stdout}\n{r.stderr}"
        return hits[0]

    for prefix in ["Landlock ABI", "seccomp: filters supported", "job namespaces: user, PID and network namespaces created",
                   "sandbox self-test", "mount namespace: each job sees empty /run, /tmp and /dev/shm",
                   "database reachable", f"agent-runner {version()} (commit", "workspace root"]:
        assert line(prefix).startswith("ok    "), f"{line(prefix)}\n---\n{r.stdout}"
    # podman's default seccomp profile is on, and the job child's own filter still installs beneath it.
    assert "already filtered" in line("seccomp: filters supported")
    assert not [l for l in lines if l.startswith("fail ")], r.stdout
    assert r.returncode == 0, r.stdout + r.stderr


def test_with_podmans_masked_proc_doctor_names_the_fallback(image, database, work_volume):
    uri, name, _ = database
    r = podman("run", "--rm", *DEFAULT_MASKS, *work_volume, "-e", f"MONGODB_URI={uri}", "-e", f"MONGO_DB_NAME={name}",
               "-e", "GENERATORS=scaffold", image, "doctor", check=False, timeout=180)
    mount = [l for l in r.stdout.splitlines() if "mount namespace" in l]
    assert len(mount) == 1, r.stdout + r.stderr
    assert mount[0].startswith("warn  mount namespace: made, with the host's /proc"), mount[0]
    assert "may not create Unix sockets" in mount[0], mount[0]
    assert not [l for l in r.stdout.splitlines() if l.startswith("fail ")], r.stdout


def test_a_job_runs_end_to_end_inside_the_container(image, database, remotes, work_volume):
    uri, name, db = database
    port = free_port()
    env = ["-e", f"MONGODB_URI={uri}", "-e", f"MONGO_DB_NAME={name}"]
    seeded = podman("run", "--rm", *CONFINED, *env, image, "seed", "--repo", "file:///remotes/demo.git")
    job_id = seeded.stdout.strip().splitlines()[-1]
    name_ = "agent-runner-test-" + os.urandom(4).hex()
    podman("run", "-d", "--name", name_, *CONFINED, *env,
           "-v", f"{remotes}:/remotes", "-e", "GIT_LOCAL_REMOTE_ROOTS=/remotes", "-e", "GENERATORS=scaffold",
           "-e", f"METRICS_ADDR=127.0.0.1:{port}", "-e", "RUNNER_POLL_SECONDS=0.5",
           *work_volume, image)
    try:
        job = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = db.jobs.find_one({"_id": job_id})
            if job and job.get("status") in ("done", "failed"):
                break
            time.sleep(0.5)
        logs = podman("logs", name_, check=False)
        assert job and job.get("status") == "done", f"{job}\n{logs.stdout}\n{logs.stderr}"
        # Its commit is the remote's head, written by the service user.
        assert job["metadata"]["commitSha"] == remote_head(remotes)
        assert (remotes / "demo.git" / "refs" / "heads" / "main").stat().st_uid == SERVICE_UID
        # The process is the service user's; it serves its build and health.
        top = podman("top", name_, "user", "args").stdout
        service_user = ("agent-runner", str(SERVICE_UID))
        supervisors = process_users(top, "/usr/local/bin/agent-runner run")
        assert supervisors and all(u in service_user for u in supervisors), top
        assert all(u in service_user for u in process_users(top, "/usr/local/bin/agent-runner")), top
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        build = f'agent_runner_build_info{{version="{version()}",commit="{expected_commit()}"}} 1'
        assert any(l.startswith(build) for l in metrics.splitlines()), metrics
        health = podman("healthcheck", "run", name_, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        # STOPSIGNAL SIGTERM: the supervisor stops cleanly.
        podman("stop", "-t", "30", name_)
        state = json.loads(podman("inspect", name_).stdout)[0]["State"]
        assert state["ExitCode"] == 0, state
    finally:
        podman("rm", "-f", name_, check=False)
