#!/usr/bin/env python3
# https_policy.py IP PORT CERT KEY DIR - a static HTTPS server for MTA-STS
# tests (tests/relay/test_mta_sts.c): serves DIR (e.g. DIR/.well-known/
# mta-sts.txt as text/plain) on IP:PORT with the test CA's certificate,
# until killed.  Python's http.server with an ssl context; one thread.
import http.server
import os
import ssl
import sys

ip, port, cert, key, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
os.chdir(root)


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".txt": "text/plain"}

    def log_message(self, *args):
        pass


httpd = http.server.HTTPServer((ip, port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
