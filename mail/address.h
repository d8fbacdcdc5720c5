/*
 * address.h - RFC 5322 mailbox parsing and validation for the send API.
 *
 * address_parse() accepts "local@domain", "<local@domain>" and
 * "Display Name <local@domain>" (the display name bare or quoted; UTF-8 is
 * allowed in it, the composer encodes it per RFC 2047).  The addr-spec is
 * checked strictly: dot-atom or quoted-string local part of at most
 * MF_LOCAL_PART_MAX octets, a domain of LDH labels (1 to
 * MF_DOMAIN_LABEL_MAX octets each, MF_DOMAIN_MAX in all, at least two
 * labels).  CR, LF and NUL anywhere are refused (header injection).
 * Non-ASCII domains and local parts are refused with a message saying so
 * (no IDNA/SMTPUTF8 in this version).
 *
 * Functions return 0, or -1 with a human-readable reason in err.
 */
#ifndef MF_MAIL_ADDRESS_H
#define MF_MAIL_ADDRESS_H

#include <stddef.h>

#include "mail/mailreq.h"

/* Parses a mailbox; on success out->name (or NULL) and out->addr are
 * allocated and owned by out (mail_request_cleanup frees them). */
int address_parse(const char *s, struct mail_address *out, char *err, size_t errlen);
/* Checks a bare addr-spec "local@domain". */
int address_check_spec(const char *addr, char *err, size_t errlen);
/* Writes the lower-cased domain of a valid addr-spec into out. */
void address_domain_lower(const char *addr, char *out, size_t outsz);

#endif
