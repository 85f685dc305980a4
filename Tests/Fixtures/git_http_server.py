#!/usr/bin/env python3
"""Smart-HTTP git server on loopback: `git http-backend` behind basic auth.

Usage: git_http_server.py PROJECT_ROOT TOKEN REQUEST_LOG [SCENARIO]
Prints its port first. Every request must carry basic auth with user
`x-access-token` and password TOKEN, else 401. Each request is logged as a
JSON line {method, path, query, auth} with auth one of none|ok|bad.
SCENARIO `tls`: serve HTTPS with PROJECT_ROOT/../cert.pem and key.pem (a
self-signed certificate the client must refuse).
SCENARIO `move-before-push`: when a client asks to push (GET
info/refs?service=git-receive-pack), first add a commit to the repository's
main branch, as if someone else pushed between the client's fetch and push.
"""
import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ROOT, TOKEN, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
SCENARIO = sys.argv[4] if len(sys.argv) > 4 else ""
lock = threading.Lock()
moved = {"done": False}


def log(entry):
    with lock, open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


def move_branch(repo):
    """Commit on top of main directly in the bare repository."""
    env = dict(os.environ, GIT_AUTHOR_NAME="Someone", GIT_AUTHOR_EMAIL="s@e", GIT_COMMITTER_NAME="Someone",
               GIT_COMMITTER_EMAIL="s@e")
    head = subprocess.run(["git", "-C", repo, "rev-parse", "main"], capture_output=True, text=True, env=env)
    blob = subprocess.run(["git", "-C", repo, "hash-object", "-w", "--stdin"], input="moved\n", capture_output=True,
                          text=True, env=env).stdout.strip()
    tree = subprocess.run(["git", "-C", repo, "mktree"], input=f"100644 blob {blob}\tMOVED.txt\n", capture_output=True,
                          text=True, env=env).stdout.strip()
    args = ["git", "-C", repo, "commit-tree", tree, "-m", "someone else"]
    if head.returncode == 0:
        args += ["-p", head.stdout.strip()]
    commit = subprocess.run(args, capture_output=True, text=True, env=env).stdout.strip()
    subprocess.run(["git", "-C", repo, "update-ref", "refs/heads/main", commit], check=True, env=env)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def handle_git(self, method):
        parts = urlsplit(self.path)
        header = self.headers.get("Authorization", "")
        auth = "none"
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            auth = "ok" if (user == "x-access-token" and password == TOKEN) else "bad"
        log({"method": method, "path": parts.path, "query": parts.query, "auth": auth})
        body = self.body() if method == "POST" else b""
        if auth != "ok":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if SCENARIO == "move-before-push" and "service=git-receive-pack" in parts.query and not moved["done"]:
            moved["done"] = True
            repo = os.path.join(ROOT, parts.path.strip("/").split("/")[0])
            move_branch(repo)
        env = dict(os.environ, GIT_PROJECT_ROOT=ROOT, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=parts.path,
                   QUERY_STRING=parts.query, REQUEST_METHOD=method, REMOTE_USER="x-access-token",
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)))
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        out = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.handle_git("GET")

    def do_POST(self):
        self.handle_git("POST")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if SCENARIO == "tls":
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    parent = os.path.dirname(os.path.abspath(ROOT))
    context.load_cert_chain(os.path.join(parent, "cert.pem"), os.path.join(parent, "key.pem"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
