#!/usr/bin/env python3
# https_policy.py IP PORT CERT KEY DIR [LOG [DELAY_MS]] - a static HTTPS server for
# MTA-STS tests (tests/relay/test_mta_sts.c, tests/integration/
# test_delivery_sts.c): serves DIR (e.g. DIR/.well-known/mta-sts.txt as
# text/plain, read again on every request, so a test can change it) on
# IP:PORT with the test CA's certificate, until killed.  With LOG, each
# request answered appends a line "PATH STATUS" to it (how a test counts
# fetches).  With DELAY_MS, each answer waits that long first (a slow
# policy server).  Python's http.server with an ssl context; one thread.
import http.server
import os
import ssl
import sys
import time

ip, port, cert, key, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
log = os.path.abspath(sys.argv[6]) if len(sys.argv) > 6 else None
delay = int(sys.argv[7]) / 1000.0 if len(sys.argv) > 7 else 0
os.chdir(root)


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".txt": "text/plain"}

    def log_message(self, *args):
        pass

    def do_GET(self):
        if delay:
            time.sleep(delay)
        super().do_GET()

    def log_request(self, code="-", size="-"):
        if log:
            with open(log, "a") as f:
                f.write("%s %s\n" % (self.path, getattr(code, "value", code)))


httpd = http.server.HTTPServer((ip, port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
