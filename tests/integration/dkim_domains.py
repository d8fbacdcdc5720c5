#!/usr/bin/python3
"""dkim_domains.py MESSAGE.eml HOST:PORT - verifies every DKIM-Signature of
the message with Debian's python3-dkim (dkimpy; Ed25519 through
python3-nacl), which looks each key up in DNS (RFC 6376 §3.6.2.2) through
dnspython (python3-dnspython) asking only the server at HOST:PORT (the
test's NSD), over UDP and then TCP for a truncated answer, as a receiver
would.

Prints one line per signature, "a=ALG s=SELECTOR pass|fail", and exits 0
when every signature verifies, 1 when one does not or there is none.
"""
import re
import sys

import dkim
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

raw = open(sys.argv[1], "rb").read()
if b"\r\n" not in raw:  # smtp-sink writes its dump with LF line ends
    raw = raw.replace(b"\n", b"\r\n")
host, port = sys.argv[2].rsplit(":", 1)
port = int(port)


def dnsfunc(name, timeout=5):
    """dkimpy's lookup hook: the TXT record of name, its strings joined
    (RFC 6376 §3.6.2.2), or None when there is none."""
    name = name.decode() if isinstance(name, bytes) else name
    q = dns.message.make_query(name, dns.rdatatype.TXT)
    try:
        r, _ = dns.query.udp_with_fallback(q, host, timeout=timeout, port=port)
    except dns.exception.Timeout as e:
        raise dkim.DnsTimeoutError(str(e))
    if r.rcode() != dns.rcode.NOERROR:
        return None
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            return b"".join(list(rrset)[0].strings)
    return None


d = dkim.DKIM(raw)
sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
ok = len(sigs) > 0
for i, sig in enumerate(sigs):
    tags = dict(re.findall(rb"\b([a-z]+)=([^;]*)", re.sub(rb"\s+", b"", sig)))
    res = dkim.DKIM(raw).verify(idx=i, dnsfunc=dnsfunc)
    print("a=%s s=%s %s" % (tags.get(b"a", b"?").decode(), tags.get(b"s", b"?").decode(), "pass" if res else "fail"))
    ok = ok and res
sys.exit(0 if ok else 1)
