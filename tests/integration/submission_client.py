#!/usr/bin/env python3
"""submission_client.py - Python's smtplib as a submission client for
tests/integration/test_submission.c.

  submission_client.py smtplib HOST PORT KEY
      implicit TLS (port 465 style, smtplib.SMTP_SSL), AUTH LOGIN with the
      API key as the password, SMTPUTF8 + BODY=8BITMIME and a UTF-8 subject
      and body; prints the server's reply to the end of data.
"""
import smtplib
import ssl
import sys


def smtplib_send(host, port, key):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP_SSL(host, port, context=ctx, timeout=20) as s:
        s.ehlo("erp.test")
        for ext in ("smtputf8", "8bitmime", "auth", "size", "pipelining", "enhancedstatuscodes"):
            if not s.has_extn(ext):
                raise SystemExit("EHLO lacks %s: %s" % (ext, s.esmtp_features))
        if "LOGIN" not in s.esmtp_features["auth"].upper().split():
            raise SystemExit("AUTH LOGIN not offered")
        s.user, s.password = "erp user", key
        code, resp = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        print("auth", code, resp.decode())
        msg = ("From: Jörg <erp@shop.test>\r\n"
               "To: kunde@example.test\r\n"
               "Subject: Bestätigung Ihrer Bestellung\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n"
               "MIME-Version: 1.0\r\n"
               "\r\n"
               "Grüße aus dem Lager.\r\n").encode("utf-8")
        s.mail("erp@shop.test", ["SMTPUTF8", "BODY=8BITMIME"])
        code, resp = s.rcpt("kunde@example.test")
        if code != 250:
            raise SystemExit("RCPT %d %s" % (code, resp))
        code, resp = s.data(msg)
        print("data", code, resp.decode())
        if code != 250:
            raise SystemExit(1)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "smtplib":
        smtplib_send(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
