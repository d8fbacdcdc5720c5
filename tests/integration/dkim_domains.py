#!/usr/bin/python3
"""dkim_domains.py MESSAGE.eml RECORDS.json - verifies every DKIM-Signature
of the message with Debian's python3-dkim (dkimpy; Ed25519 through
python3-nacl), answering each key lookup from the records a domain's API
answer published ({"name": "value"} for its TXT records) instead of DNS.

Prints one line per signature, "a=ALG s=SELECTOR pass|fail", and exits 0
when every signature verifies, 1 when one does not or there is none.
"""
import json
import re
import sys

import dkim

raw = open(sys.argv[1], "rb").read()
if b"\r\n" not in raw:  # smtp-sink writes its dump with LF line ends
    raw = raw.replace(b"\n", b"\r\n")
records = json.load(open(sys.argv[2]))


def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    value = records.get(name.rstrip("."))
    return value.encode() if value is not None else None


d = dkim.DKIM(raw)
sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
ok = len(sigs) > 0
for i, sig in enumerate(sigs):
    tags = dict(re.findall(rb"\b([a-z]+)=([^;]*)", re.sub(rb"\s+", b"", sig)))
    res = dkim.DKIM(raw).verify(idx=i, dnsfunc=dnsfunc)
    print("a=%s s=%s %s" % (tags.get(b"a", b"?").decode(), tags.get(b"s", b"?").decode(), "pass" if res else "fail"))
    ok = ok and res
sys.exit(0 if ok else 1)
