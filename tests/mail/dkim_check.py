#!/usr/bin/python3
"""dkim_check.py MESSAGE.eml DNS_RECORD_FILE - verifies the message's
DKIM-Signature with Debian's python3-dkim (dkimpy), answering the key
lookup with the TXT record in DNS_RECORD_FILE instead of DNS.

Exit 0: the signature verifies; 1: it does not (the reason is printed).
"""
import logging
import sys

import dkim

raw = open(sys.argv[1], "rb").read()
record = open(sys.argv[2], "rb").read().strip()
asked = []


def dnsfunc(name, timeout=5):
    asked.append(name)
    return record


logging.basicConfig(level=logging.DEBUG, format="dkimpy: %(message)s")
ok = dkim.verify(raw, logger=logging.getLogger("dkim"), dnsfunc=dnsfunc)
print("dkim_check: %s, key lookups %r" % ("pass" if ok else "fail", asked))
sys.exit(0 if ok else 1)
