/*
 * outcome.h - the contract between the queue (queue/) and the SMTP side
 * (relay/): the queue hands over one message and the recipients of one
 * destination domain (struct delivery_job); the relay (relay/relay.h)
 * routes it, speaks SMTP and fills one outcome per recipient.  Neither
 * side includes the other: queue/ is given a delivery function by
 * cli/cmd_serve.c, and the failure policy (queue/policy.h) decides what
 * each outcome means.
 *
 * Outcomes are classified once (STYLE.md): scope, class and kind.
 */
#ifndef MF_MAIL_OUTCOME_H
#define MF_MAIL_OUTCOME_H

#include <stddef.h>
#include <stdint.h>

enum outcome_scope { SCOPE_SESSION, SCOPE_MESSAGE, SCOPE_RECIPIENT };
/* OUT_LOCAL: no SMTP reply (connect failure, timeout, TLS, DNS, internal). */
enum outcome_class { OUT_2XX, OUT_4XX, OUT_5XX, OUT_LOCAL };
enum outcome_kind { KIND_NONE, KIND_CONNECT, KIND_DNS, KIND_TLS, KIND_PROTOCOL, KIND_RESPONSE,
		    KIND_TIMEOUT, KIND_INTERNAL };

struct smtp_outcome {
	enum outcome_scope scope;
	enum outcome_class cls;
	enum outcome_kind kind;
	int permanent;           /* set for LOCAL failures that must not be retried, e.g. null MX */
	int code;                /* SMTP reply code, 0 when none */
	char enhanced[16];       /* "5.1.1" (RFC 3463), "" when none */
	char text[512];          /* reply text (lines joined by a space) or local error */
	char mx[256];            /* host that answered (or was tried) */
	char tls_version[16];    /* "" when no TLS */
	char tls_cipher[64];
	int tls_verified;
	int tls_resumed;         /* the session's TLS handshake resumed an earlier one */
	char mta_sts[8];         /* the MTA-STS mode applied (RFC 8461): "enforce", "testing", "none"; "" not asked */
	char sts_failure[200];   /* testing mode: what enforce would have refused; "" when nothing */
};

struct delivery_rcpt {
	int64_t id;              /* recipients.id, for the caller */
	const char *addr;        /* borrowed */
	struct smtp_outcome out; /* filled by relay_deliver */
};

struct delivery_job {
	const char *mail_from;   /* envelope sender (VERP address or from); "" = null sender */
	const char *domain;      /* recipients' domain, lower case */
	const char *msg;         /* the composed message, CRLF line ends, borrowed */
	size_t len;
	const char *log_id;      /* message id for log lines */
	struct delivery_rcpt *rcpts;
	int nrcpts;
	long timeout_ms;         /* the whole delivery (every host tried) ends within this; 0: none */
};

#endif
