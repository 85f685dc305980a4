#!/usr/bin/env python3
"""GitHub's REST API for pull requests, on loopback, answering like api.github.com.

Usage: github_api_server.py TOKEN REQUEST_LOG GIT_ROOT DEFAULT_BRANCH [SCENARIO]
Prints its port first. Every request must carry `Authorization: Bearer TOKEN`
(else 401 {"message": "Bad credentials"}). Repositories are the bare ones in
GIT_ROOT (`{repo}.git`); one that is missing is a 404. Pull requests live in
memory, numbered from 1:
  GET   /repos/{o}/{r}                              -> {"default_branch": DEFAULT_BRANCH, ...}
  GET   /repos/{o}/{r}/branches/{b}                 -> 404 (SCENARIO protected: {"protected": true})
  GET   /repos/{o}/{r}/pulls?state=open&head=o:b    -> the open pull requests from b
  POST  /repos/{o}/{r}/pulls                        -> 201 (422 when one from that head is open, as GitHub does)
  PATCH /repos/{o}/{r}/pulls/{n}                    -> 200
  POST  /repos/{o}/{r}/issues/{n}/labels            -> 200
  POST  /repos/{o}/{r}/pulls/{n}/requested_reviewers -> 201
head.sha is the branch's commit in the bare repository (git rev-parse).
SCENARIO (for POST /pulls): forbidden (403 "Resource not accessible by
integration"), invalid (422 with errors[].message), secondary-once (the first
one 403 with Retry-After: 1 and a secondary-rate-limit message), rate-limited
(always 403 with Retry-After: 3600), fail-once (the first one 502).
Each request is logged as a JSON line {method, path, query, auth, body}.
"""
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN, LOG, GIT_ROOT, DEFAULT = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
SCENARIO = sys.argv[5] if len(sys.argv) > 5 else ""
lock = threading.Lock()
pulls = []
once = {"done": False}


def sha(repo, branch):
    r = subprocess.run(["git", "-C", os.path.join(GIT_ROOT, repo + ".git"), "rev-parse", "refs/heads/" + branch],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, doc, headers=()):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        parts = urlsplit(self.path)
        header = self.headers.get("Authorization", "")
        auth = "ok" if header == "Bearer " + TOKEN else ("none" if not header else "bad")
        with lock, open(LOG, "a") as f:
            f.write(json.dumps({"method": method, "path": parts.path, "query": parts.query, "auth": auth,
                                "body": body}) + "\n")
        if auth != "ok":
            return self.answer(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        seg = [unquote(s) for s in parts.path.strip("/").split("/")]
        if len(seg) < 3 or seg[0] != "repos":
            return self.answer(404, {"message": "Not Found"})
        owner, repo, rest = seg[1], seg[2], seg[3:]
        if not os.path.isdir(os.path.join(GIT_ROOT, repo + ".git")):
            return self.answer(404, {"message": "Not Found"})
        with lock:
            return self.route(method, owner, repo, rest, parse_qs(parts.query), body)

    def route(self, method, owner, repo, rest, query, body):
        if method == "GET" and not rest:
            return self.answer(200, {"full_name": f"{owner}/{repo}", "default_branch": DEFAULT, "private": True})
        if method == "GET" and rest[:1] == ["branches"]:
            if SCENARIO == "protected":
                return self.answer(200, {"name": "/".join(rest[1:]), "protected": True})
            return self.answer(404, {"message": "Branch not found"})
        if rest == ["pulls"] and method == "GET":
            head = query.get("head", [""])[0]
            found = [p for p in pulls if p["state"] == "open" and f"{owner}:{p['head']['ref']}" == head]
            return self.answer(200, found)
        if rest == ["pulls"] and method == "POST":
            if SCENARIO == "forbidden":
                return self.answer(403, {"message": "Resource not accessible by integration"})
            if SCENARIO == "rate-limited" or (SCENARIO == "secondary-once" and not once["done"]):
                once["done"] = True
                return self.answer(403, {"message": "You have exceeded a secondary rate limit. Please wait a few "
                                                    "minutes before you try again."}, [("Retry-After", "1" if SCENARIO == "secondary-once" else "3600")])
            if SCENARIO == "fail-once" and not once["done"]:
                once["done"] = True
                return self.answer(502, {"message": "Server Error"})
            if SCENARIO == "invalid":
                return self.answer(422, {"message": "Validation Failed", "errors": [
                    {"resource": "PullRequest", "code": "custom",
                     "message": f"No commits between {body['base']} and {body['head']}"}]})
            if any(p["state"] == "open" and p["head"]["ref"] == body["head"] for p in pulls):
                return self.answer(422, {"message": "Validation Failed", "errors": [
                    {"resource": "PullRequest", "code": "custom",
                     "message": f"A pull request already exists for {owner}:{body['head']}."}]})
            n = len(pulls) + 1
            pr = {"number": n, "html_url": f"https://github.example/{owner}/{repo}/pull/{n}", "state": "open",
                  "title": body["title"], "body": body["body"], "draft": body.get("draft", False),
                  "head": {"ref": body["head"], "sha": sha(repo, body["head"])}, "base": {"ref": body["base"]},
                  "labels": [], "requested_reviewers": []}
            pulls.append(pr)
            return self.answer(201, pr)
        if len(rest) == 2 and rest[0] == "pulls" and method == "PATCH":
            pr = next((p for p in pulls if str(p["number"]) == rest[1]), None)
            if pr is None:
                return self.answer(404, {"message": "Not Found"})
            pr.update({k: v for k, v in body.items() if k in ("title", "body", "state")})
            pr["head"]["sha"] = sha(repo, pr["head"]["ref"])
            return self.answer(200, pr)
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "labels" and method == "POST":
            pr = next((p for p in pulls if str(p["number"]) == rest[1]), None)
            if pr is None:
                return self.answer(404, {"message": "Not Found"})
            pr["labels"] = sorted(set(pr["labels"]) | set(body["labels"]))
            return self.answer(200, [{"name": l} for l in pr["labels"]])
        if len(rest) == 3 and rest[0] == "pulls" and rest[2] == "requested_reviewers" and method == "POST":
            pr = next((p for p in pulls if str(p["number"]) == rest[1]), None)
            if pr is None:
                return self.answer(404, {"message": "Not Found"})
            pr["requested_reviewers"] = sorted(set(pr["requested_reviewers"]) | set(body["reviewers"]))
            return self.answer(201, pr)
        return self.answer(404, {"message": "Not Found"})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
