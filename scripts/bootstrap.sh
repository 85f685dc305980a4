#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on a Debian machine:
# the -dev packages for the C libraries, and a local virtualenv holding
# SecantusDB (a MongoDB-wire server) for the test database; Chromium, its
# WebDriver, Selenium and pytest for the dashboard's browser tests; systemd
# for `systemd-analyze security` on the shipped unit (DeployTests; installing
# the package in a container starts nothing, and the tests skip without it);
# debootstrap, buildah, podman, runc and catatonit for `make image` and its
# test (Tests/Deploy), and the schema validators for the compose file and the
# Kubernetes manifest (their schemas come inside the packages: nothing is
# fetched when they run).
# Idempotent and quick when everything is already present.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(libmongoc-dev libbson-dev libgit2-dev libcurl4-openssl-dev
          libseccomp-dev pkg-config git python3-venv ca-certificates openssl
          chromium chromium-driver fonts-dejavu-core libssl-dev python3-cryptography
          python3-yaml nodejs systemd curl
          debootstrap buildah podman runc catatonit)
SECANTUS_VERSION="0.7.0b3"
# The real agents the end-to-end agent tests run (AgentEndToEndTests), each in
# its own virtualenv under .venv-agents/ (their pinned dependencies differ),
# made from Debian's /usr/bin/python3 so that the sandbox, which reads /usr,
# can run them wherever the checkout is.
AIDER_VERSION="0.86.2"
MINI_SWE_AGENT_VERSION="2.4.6"
# 4.52 needs a newer certifi than the package mirror has.
SELENIUM_VERSION="4.51.0"
# Schema checks of Deploy/docker-compose.yml (check-jsonschema's vendored
# Compose Specification) and Deploy/kubernetes.yaml (kubernetes-validate's
# bundled Kubernetes schemas).
CHECK_JSONSCHEMA_VERSION="0.39.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"

# Root runs apt-get directly; others go through sudo when it exists.
SUDO=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
fi

# 1. Debian packages: install only the missing ones, updating the index once.
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. Virtualenv with the database server (and pymongo, its dependency).
VENV="$ROOT/.venv"
if [[ ! -x "$VENV/bin/secantusd-py" ]]; then
  echo "bootstrap: installing SecantusDB $SECANTUS_VERSION into .venv"
  [[ -x "$VENV/bin/python" ]] || "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "SecantusDB==$SECANTUS_VERSION"
fi

# 3. Browser-test tools (Tests/Browser): Selenium and pytest in the same .venv.
if ! "$VENV/bin/python" -c "import pytest, selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
  echo "bootstrap: installing Selenium $SELENIUM_VERSION and pytest into .venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "selenium==$SELENIUM_VERSION" pytest
fi
# 3b. Deployment schema checks (Tests/Deploy) in the same .venv.
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('check-jsonschema') != '$CHECK_JSONSCHEMA_VERSION' or m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
  echo "bootstrap: installing check-jsonschema $CHECK_JSONSCHEMA_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION into .venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
# 4. The agents, pinned, one virtualenv each (a few minutes the first time).
agent_venv() { # NAME PACKAGE VERSION EXECUTABLE
  local venv="$ROOT/.venv-agents/$1"
  if [[ -x "$venv/bin/$4" ]] && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$2') != '$3')" 2>/dev/null; then
    return
  fi
  echo "bootstrap: installing $2 $3 into .venv-agents/$1"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$2==$3"
}
agent_venv aider aider-chat "$AIDER_VERSION" aider
agent_venv mini-swe-agent mini-swe-agent "$MINI_SWE_AGENT_VERSION" mini
echo "bootstrap: ok"
