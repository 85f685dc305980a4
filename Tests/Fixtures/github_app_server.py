#!/usr/bin/env python3
"""GitHub's installation-token API on loopback, checking the app's JWT.

Usage: github_app_server.py PUBLIC_KEY_PEM APP_ID TOKEN REQUEST_LOG [PERMISSIONS_JSON]
Prints its port first. Answers like api.github.com:
  GET  /repos/{owner}/{repo}/installation          -> 200 {"id": 4242, ...}
  POST /app/installations/4242/access_tokens       -> 201 {"token": TOKEN, "expires_at": ...}
       (asked for {"metadata": "read"} only: a read-only token, READ_TOKEN below)
  GET  /repos/{owner}/{repo}/collaborators/{user}/permission
       -> 200 {"permission": P, "role_name": P, "user": {"login": user, "permissions": {"push": ...}}}
          with P from PERMISSIONS_JSON (a {login: permission} object, default
          {"octocat": "write"}); 404 for a login it does not list.
  GET  /app, GET /app/installations?…  -> the App's and its one installation's permissions
       (the environment's APP_PERMISSIONS, JSON; default contents: write,
       metadata: read, pull_requests: write)
The app endpoints must carry `Authorization: Bearer <JWT>` whose RS256
signature verifies with PUBLIC_KEY_PEM, with iss = APP_ID, iat <= now < exp
and exp - iat <= 600 s; otherwise 401 {"message": "A JSON web token could not
be decoded"}. The permission endpoint must carry an installation token (401
otherwise). A repository named `not-installed` has no installation (404).
Each request is logged as a JSON line {method, path, jwt, body} with jwt one
of ok|bad|none, or for the permission endpoint read-token|token|none.
"""
import base64
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

PUBLIC = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
APP_ID, TOKEN, LOG = sys.argv[2], sys.argv[3], sys.argv[4]
PERMISSIONS = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {"octocat": "write"}
READ_TOKEN = "ghs_" + "ReadOnlyMetadataTokenForTheCheck000000"
# The App's permissions and its installation's (GET /app, GET /app/installations), from APP_PERMISSIONS (JSON).
APP_PERMISSIONS = json.loads(os.environ.get("APP_PERMISSIONS") or
                             '{"contents": "write", "metadata": "read", "pull_requests": "write"}')


def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_jwt(header):
    if not header.startswith("Bearer "):
        return "none"
    try:
        head, claims, sig = header[7:].split(".")
        if json.loads(b64(head)) != {"alg": "RS256", "typ": "JWT"}:
            return "bad"
        PUBLIC.verify(b64(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        c = json.loads(b64(claims))
        now = time.time()
        if c.get("iss") != APP_ID or not (c["iat"] <= now < c["exp"]) or c["exp"] - c["iat"] > 600:
            return "bad"
        return "ok"
    except (ValueError, KeyError, InvalidSignature):
        return "bad"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.strip("/").split("/")
        if method == "GET" and len(parts) == 6 and parts[0] == "repos" and parts[3] == "collaborators" \
                and parts[5] == "permission":
            return self.permission(parts[4])
        jwt = check_jwt(self.headers.get("Authorization", ""))
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": method, "path": self.path, "jwt": jwt,
                                "body": json.loads(body) if body else None}) + "\n")
        if jwt != "ok":
            return self.answer(401, {"message": "A JSON web token could not be decoded"})
        if method == "GET" and self.path == "/app":
            return self.answer(200, {"id": int(APP_ID), "slug": "architex", "permissions": APP_PERMISSIONS})
        if method == "GET" and self.path.startswith("/app/installations?"):
            return self.answer(200, [{"id": 4242, "account": {"login": "acme"}, "permissions": APP_PERMISSIONS}])
        if method == "GET" and len(parts) == 4 and parts[0] == "repos" and parts[3] == "installation":
            if parts[2] == "not-installed":
                return self.answer(404, {"message": "Not Found"})
            return self.answer(200, {"id": 4242, "app_id": int(APP_ID), "account": {"login": parts[1]}})
        if method == "POST" and self.path == "/app/installations/4242/access_tokens":
            expires = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            asked = (json.loads(body) if body else {}).get("permissions")
            if asked == {"metadata": "read"}:
                return self.answer(201, {"token": READ_TOKEN, "expires_at": expires, "permissions": asked,
                                         "repository_selection": "selected"})
            return self.answer(201, {"token": TOKEN, "expires_at": expires, "permissions": {"contents": "write"},
                                     "repository_selection": "selected"})
        self.answer(404, {"message": "Not Found"})

    def permission(self, user):
        header = self.headers.get("Authorization", "")
        auth = {"Bearer " + READ_TOKEN: "read-token", "Bearer " + TOKEN: "token"}.get(header, "none")
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": "GET", "path": self.path, "jwt": auth, "body": None}) + "\n")
        if auth == "none":
            return self.answer(401, {"message": "Bad credentials"})
        if user not in PERMISSIONS:
            return self.answer(404, {"message": "Not Found"})
        p = PERMISSIONS[user]
        legacy = "write" if p == "maintain" else p
        return self.answer(200, {"permission": legacy, "role_name": p,
                                 "user": {"login": user, "permissions": {"push": p in ("admin", "maintain", "write")}}})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
