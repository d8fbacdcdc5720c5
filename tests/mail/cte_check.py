#!/usr/bin/python3
"""cte_check.py CASES.json - checks text bodies in the transfer encoding
mail/encode.c chose for them with an independent decoder (Python's email
package, policy.default).

CASES is written by tests/mail/test_encode.c: a list of
{"cte", "message" (base64 of a one-part MIME message), "text" (base64 of the
body in canonical form: CRLF line ends, final CRLF)}.  Each message must
decode to its text without defects, and its body lines must follow the
rules of its encoding (RFC 2045 §2.7 for 7bit, §6.7 for quoted-printable,
§6.8 for base64).  Prints what differs and exits 1, or exits 0.
"""
import base64
import email
import email.policy
import json
import re
import sys

QP_LITERAL = re.compile(rb'^[\t !-<>-~]*$')  # RFC 2045 §6.7 rules 2 and 3
QP_ESCAPE = re.compile(rb'=[0-9A-F]{2}')
B64_LINE = re.compile(rb'^[A-Za-z0-9+/]*={0,2}$')


def body_problems(cte, body):
    out = []
    if not body.endswith(b"\r\n"):
        out.append("the body does not end in CRLF")
    lines = body.split(b"\r\n")[:-1]
    for i, line in enumerate(lines):
        if b"\r" in line or b"\n" in line:
            out.append("bare CR or LF in line %d" % i)
        if any(c > 127 for c in line):
            out.append("8-bit octet in line %d" % i)
        if cte == "7bit":
            if len(line) > 78:
                out.append("7bit line %d has %d octets" % (i, len(line)))
            if b"\0" in line:
                out.append("NUL in 7bit line %d" % i)
            if line.endswith((b" ", b"\t")):
                out.append("7bit line %d ends in whitespace (may be stripped in transit)" % i)
        elif cte == "quoted-printable":
            if len(line) > 76:
                out.append("quoted-printable line %d has %d characters: %r" % (i, len(line), line))
            if line.endswith((b" ", b"\t")):
                out.append("quoted-printable line %d ends in whitespace: %r" % (i, line))
            bare = QP_ESCAPE.sub(b"", line[:-1] if line.endswith(b"=") else line)
            if not QP_LITERAL.match(bare):
                out.append("quoted-printable line %d has an unencoded octet or a stray '=': %r" % (i, line))
        else:
            if len(line) > 76 or not B64_LINE.match(line):
                out.append("base64 line %d: %r" % (i, line))
    return out


def main():
    cases = json.load(open(sys.argv[1], encoding="ascii"))
    failed = 0
    for n, c in enumerate(cases):
        raw = base64.b64decode(c["message"])
        want = base64.b64decode(c["text"])
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        problems = []
        if msg.defects:
            problems.append("defects %r" % msg.defects)
        if msg["Content-Transfer-Encoding"] != c["cte"]:
            problems.append("Content-Transfer-Encoding %r" % msg["Content-Transfer-Encoding"])
        body = raw.split(b"\r\n\r\n", 1)[1]
        problems += body_problems(c["cte"], body)
        # The decoders give line ends as the parser kept them: compare lines.
        got = msg.get_payload(decode=True).replace(b"\r\n", b"\n")
        if got != want.replace(b"\r\n", b"\n"):
            problems.append("decodes to %r, not %r" % (got[:200], want[:200]))
        if problems:
            failed += 1
            if failed <= 5:
                print("case %d (%s): %s\n  message: %r" % (n, c["cte"], "; ".join(problems), raw[:400]))
    print("%d cases, %d failed" % (len(cases), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
