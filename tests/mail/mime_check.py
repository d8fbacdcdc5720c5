#!/usr/bin/python3
"""mime_check.py MESSAGE.eml EXPECT.json - checks a composed message with an
independent parser (Python's email package, policy.default).

EXPECT is written by tests/mail/test_mime.c: the strings the message must
decode back to.  Prints what differs and exits 1, or exits 0.
"""
import email
import email.policy
import email.utils
import json
import sys

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def norm(text):
    """Line ends as \\n, and a final line break (the composer adds one)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    return text


def structure(part):
    if part.is_multipart():
        return "%s(%s)" % (part.get_content_type(),
                           ",".join(structure(p) for p in part.iter_parts()))
    return part.get_content_type()


def main():
    raw = open(sys.argv[1], "rb").read()
    exp = json.load(open(sys.argv[2], encoding="utf-8"))

    # Wire format: CRLF everywhere, 7-bit, no line over 998 octets.
    lines = raw.split(b"\r\n")
    for i, line in enumerate(lines):
        check(b"\n" not in line and b"\r" not in line, "bare CR or LF in line %d" % i)
        check(len(line) <= 998, "line %d has %d octets" % (i, len(line)))
    check(all(b < 128 for b in raw), "message is not 7-bit")
    head = raw.split(b"\r\n\r\n", 1)[0]
    for i, line in enumerate(head.split(b"\r\n")):
        check(len(line) <= exp.get("header_width", 998),
              "header line %d has %d octets: %r" % (i, len(line), line[:100]))
    low = raw.lower()
    for s in exp.get("absent", []):
        check(s.lower().encode() not in low, "%r appears in the message" % s)

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        check(not part.defects, "defects in %s: %r" % (part.get_content_type(), part.defects))

    check(msg["MIME-Version"] == "1.0", "MIME-Version")
    check(msg["Message-ID"] == "<%s>" % exp["message_id"], "Message-ID %r" % msg["Message-ID"])
    if "date" in exp:
        d = email.utils.parsedate_to_datetime(msg["Date"])
        check(int(d.timestamp()) == exp["date"], "Date %r" % msg["Date"])
    check(msg["Subject"] == exp["subject"], "Subject %r != %r" % (msg["Subject"], exp["subject"]))
    check(len(msg.get_all("Subject", [])) == 1, "one Subject")
    for field in ("From", "To", "Cc", "Reply-To"):
        want = exp.get(field.lower())
        if want is None:
            continue
        if not want:
            check(msg[field] is None or field == "To", "%s present" % field)
            continue
        got = [[a.display_name, a.addr_spec] for a in msg[field].addresses]
        check(got == want, "%s %r != %r" % (field, got, want))
    check(msg["Bcc"] is None, "Bcc present")
    for name, value in exp.get("custom", {}).items():
        check(msg[name] == value, "header %s %r != %r" % (name, msg[name], value))

    if "structure" in exp:
        check(structure(msg) == exp["structure"], "structure %s != %s" % (structure(msg), exp["structure"]))

    bodies = {}
    atts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() in ("attachment", "inline") or part["Content-ID"]:
            atts.append(part)
            continue
        ct = part.get_content_type()
        check(ct not in bodies, "two %s bodies" % ct)
        check(part.get_content_charset() == "utf-8", "charset of %s" % ct)
        bodies[ct] = part.get_content()
    for key, ct in (("text", "text/plain"), ("html", "text/html")):
        if exp.get(key) is None:
            check(ct not in bodies or (key == "text" and bodies[ct] == ""), "unexpected %s" % ct)
        else:
            check(ct in bodies and norm(bodies[ct]) == norm(exp[key]),
                  "%s body differs: %r" % (ct, bodies.get(ct, "")[:200]))

    want_atts = exp.get("attachments", [])
    check(len(atts) == len(want_atts), "%d attachments, want %d" % (len(atts), len(want_atts)))
    for part, want in zip(atts, want_atts):
        data = part.get_payload(decode=True)
        check(data == bytes.fromhex(want["hex"]), "attachment %r bytes differ" % want["filename"])
        check(part.get_filename() == want["filename"],
              "filename %r != %r" % (part.get_filename(), want["filename"]))
        check(part.get_content_type() == want["content_type"], "content type %s" % part.get_content_type())
        cid = want.get("content_id")
        check(part["Content-ID"] == ("<%s>" % cid if cid else None), "Content-ID %r" % part["Content-ID"])
        check(part["Content-Transfer-Encoding"] == "base64", "attachment not base64")

    for name, value in exp.get("cte", {}).items():
        got = [p["Content-Transfer-Encoding"] for p in msg.walk() if p.get_content_type() == name]
        check(got == [value], "transfer encoding of %s %r != %s" % (name, got, value))

    if problems:
        for p in problems:
            print("mime_check:", p)
        sys.exit(1)
    print("mime_check: ok")


main()
