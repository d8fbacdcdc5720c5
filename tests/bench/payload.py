#!/usr/bin/env python3
"""payload.py DIR [DOMAINS] - the request bodies of make bench, written into DIR.

one.json      an order confirmation with a text and an HTML part, composed to
              ~2.2 KB: the size Postfix relays in the delivery comparisons
              (smtp-source -l 2048) and BENCHMARKS.md's ~2 KB payload
batch.json    50 of them, for POST /v1/messages/batch
small.json    the 0.75 KB message earlier runs posted (one reference line)
refused.json  one.json with an address that is not one (answered 422)
latency_batch.json  (with DOMAINS) DOMAINS messages, the i-th to
              customer@d<i>.example.net: one recipient each, every domain once
              (tests/bench/latency.sh routes d<i> to its own sink address)
"""
import json
import os
import sys

text = ("Hello Ana,\n\nThank you for your order #100123 at Shop. We have received it and it is being prepared.\n\n"
        "Order summary\n"
        "  1 x Merino wool sweater, navy, size M        79.00 EUR\n"
        "  2 x Organic cotton socks, grey                18.00 EUR\n"
        "  1 x Leather gloves, brown, size 8             45.00 EUR\n"
        "  Shipping (standard, 2-4 business days)         4.90 EUR\n"
        "  Total                                        146.90 EUR\n\n"
        "Shipping address: Ana Example, Rua das Flores 12, 1200-192 Lisboa, Portugal\n\n"
        "You will receive another email with the tracking number as soon as your parcel ships.\n"
        "Questions? Reply to this email or visit https://shop.example/help.\n\nThe Shop team\n")
row = '<tr><td>%s</td><td align="right">%s</td></tr>'
html = ('<!doctype html><html><body style="font-family:Arial,sans-serif;color:#222">'
        '<p>Hello Ana,</p><p>Thank you for your order <b>#100123</b> at Shop. We have received it and it is being prepared.</p>'
        '<table cellpadding="4" style="border-collapse:collapse">'
        + row % ("1 &times; Merino wool sweater, navy, size M", "79.00 EUR")
        + row % ("2 &times; Organic cotton socks, grey", "18.00 EUR")
        + row % ("1 &times; Leather gloves, brown, size 8", "45.00 EUR")
        + row % ("Shipping (standard, 2-4 business days)", "4.90 EUR")
        + row % ("<b>Total</b>", "<b>146.90 EUR</b>") + "</table>"
        "<p>Shipping address: Ana Example, Rua das Flores 12, 1200-192 Lisboa, Portugal</p>"
        "<p>You will receive another email with the tracking number as soon as your parcel ships.</p>"
        "</body></html>")
one = {"from": "Shop <orders@shop.example>", "to": "customer@example.net", "subject": "Your order #100123",
       "text": text, "html": html, "tags": ["order"]}
small = {"from": "Shop <orders@shop.example>", "to": "customer@example.net", "subject": "Your order #1001",
         "text": "Thank you for your order. It ships tomorrow.\nOrder: 1001\nTotal: 42.00 EUR\n",
         "html": "<p>Thank you for your order. It ships tomorrow.</p><p>Order: 1001<br>Total: 42.00 EUR</p>",
         "tags": ["order"]}


def write(name, doc):
    with open(os.path.join(sys.argv[1], name), "w") as f:
        json.dump(doc, f)


write("one.json", one)
write("refused.json", dict(one, to="customer at example.net"))
write("batch.json", {"messages": [dict(one, to="customer%d@example.net" % i) for i in range(50)]})
write("small.json", small)
if len(sys.argv) > 2:
    write("latency_batch.json",
          {"messages": [dict(one, to="customer@d%d.example.net" % i) for i in range(1, int(sys.argv[2]) + 1)]})
