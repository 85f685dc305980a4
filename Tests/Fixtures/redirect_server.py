#!/usr/bin/env python3
"""An HTTP server on loopback that redirects every request elsewhere.

Usage: redirect_server.py TARGET_BASE REQUEST_LOG
Prints its port first. Every GET or POST is answered 302 with
`Location: TARGET_BASE + path` (query included). Each request is logged as a
JSON line {method, path, authorization} (authorization: whether the request
carried an Authorization header).
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET, LOG = sys.argv[1], sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def redirect(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": method, "path": self.path,
                                "authorization": "Authorization" in self.headers}) + "\n")
        self.send_response(302)
        self.send_header("Location", TARGET + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.redirect("GET")

    def do_POST(self):
        self.redirect("POST")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
