"""What the deployment tests share: the repository's root and the image
`make image` builds, `localhost/agent-runner:<version>`, whose version is the
release in Sources/RunnerCore/Version.swift (the one `--version` prints)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def version():
    text = (ROOT / "Sources" / "RunnerCore" / "Version.swift").read_text()
    return re.search(r'static let string = "([^"]+)"', text).group(1)


IMAGE = f"localhost/agent-runner:{version()}"
