#!/usr/bin/env python3
"""starttls_check.py PORT MODE - a STARTTLS client against the sink
(tests/sink/test_sink_tls.c), with Python's smtplib and ssl.

MODE:
  send      smtplib: EHLO, STARTTLS, EHLO, one message; prints the EHLO
            keywords before and after TLS and the cipher.
  inject    RFC 3207 §4.2: "STARTTLS\\r\\nMAIL FROM:<injected@t.test>\\r\\n" in
            one write; after the handshake the first reply must be the new
            EHLO's, and RCPT must find no transaction (503).
  delay MS  after TLS, the time NOOP takes, printed; exits 1 when it came
            back sooner than MS (a delay can be late, never early).
Exit 0 when the check holds, 1 with the reason on stdout otherwise.
"""
import smtplib
import socket
import ssl
import sys
import time


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def reply(f):
    """One reply (all its lines) from a file object: (code, text)."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("connection closed while waiting for a reply")
        lines.append(line.decode().rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(lines[-1][:3]), "\n".join(lines)


def send(port):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        before = sorted(s.esmtp_features)
        if not s.has_extn("starttls"):
            raise SystemExit("no STARTTLS in EHLO: %s" % before)
        code, _ = s.starttls(context=ctx())
        if code != 220:
            raise SystemExit("STARTTLS answered %d" % code)
        s.ehlo("client.test")
        after = sorted(s.esmtp_features)
        if "starttls" in after:
            raise SystemExit("STARTTLS offered again over TLS: %s" % after)
        s.sendmail("a@t.test", ["b@t.test", "c@t.test"],
                   "Message-ID: <tls-1@t.test>\r\nSubject: over TLS\r\n\r\n.dot\r\nbody\r\n")
        print("before=%s after=%s cipher=%s" % (",".join(before), ",".join(after), s.sock.cipher()[0]))


def inject(port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = raw.makefile("rb")
    reply(f)
    raw.sendall(b"EHLO client.test\r\n")
    code, text = reply(f)
    if "STARTTLS" not in text:
        raise SystemExit("no STARTTLS in EHLO: %s" % text)
    # The injection: a command after STARTTLS in the same packet.
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@t.test>\r\n")
    code, text = reply(f)
    if code != 220:
        raise SystemExit("STARTTLS answered %s" % text)
    tls = ctx().wrap_socket(raw, server_hostname="mx.test")
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO client.test\r\n")
    code, text = reply(tf)
    if code != 250 or "Hello" not in text:
        raise SystemExit("first reply over TLS is not the EHLO's: %s" % text)
    tls.sendall(b"RCPT TO:<b@t.test>\r\n")
    code, text = reply(tf)
    if code != 503:
        raise SystemExit("RCPT after the injected MAIL: %s (the injected MAIL was obeyed)" % text)
    tls.sendall(b"MAIL FROM:<a@t.test>\r\nRCPT TO:<b@t.test>\r\nDATA\r\n")
    for want in (250, 250, 354):
        code, text = reply(tf)
        if code != want:
            raise SystemExit("wanted %d, got %s" % (want, text))
    tls.sendall(b"Subject: after injection\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    for want in (250, 221):
        code, text = reply(tf)
        if code != want:
            raise SystemExit("wanted %d, got %s" % (want, text))
    print("injected command dropped; %s" % tls.version())


def delay(port, ms):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        s.starttls(context=ctx())
        s.ehlo("client.test")
        t0 = time.monotonic()
        code, _ = s.noop()
        took = (time.monotonic() - t0) * 1000
        print("noop_ms=%.0f" % took)
        if code != 250 or took < ms:
            raise SystemExit("NOOP over TLS: %d after %.0f ms, wanted 250 after >= %d ms" % (code, took, ms))


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "send":
        send(port)
    elif mode == "inject":
        inject(port)
    elif mode == "delay":
        delay(port, int(sys.argv[3]))
    else:
        raise SystemExit("unknown mode %s" % mode)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as e:
        if e.code not in (None, 0):
            print(e.code)
            sys.exit(1)
        raise
