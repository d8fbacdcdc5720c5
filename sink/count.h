/*
 * count.h - what "mailferry sink" counts: sessions, messages, recipients,
 * faults, and duplicates by Message-ID.
 *
 * A message is a duplicate when an earlier accepted message carried the
 * same Message-ID header value (compared byte for byte after trimming
 * white space).  The set keeps a 64-bit hash per Message-ID, not the
 * string: 8 bytes (16 with the table's slack) per message, so a bench of
 * millions of messages costs tens of megabytes; two different ids share a
 * hash with a probability of about n^2/2^65, negligible at that scale.
 *
 * A mail transaction is in progress from an accepted MAIL command to its
 * final dot being read (or RSET, a new EHLO, the end of the session; a
 * --data-delay comes after it): txn_peak is
 * the most concurrent deliveries a client made, which an idle session it
 * keeps open for reuse does not count towards (peak does).
 *
 * Single-threaded: the event loop owns the counters.  sink_count_format()
 * writes one summary line, as key=value text or as JSON.
 */
#ifndef MF_SINK_COUNT_H
#define MF_SINK_COUNT_H

#include <stddef.h>
#include <stdint.h>

struct sink_count {
	unsigned long long sessions;      /* accepted connections in all */
	unsigned long long open;          /* sessions open now */
	unsigned long long peak;          /* most sessions open at once */
	unsigned long long messages;      /* messages answered 250 */
	unsigned long long recipients;    /* recipients of those messages */
	unsigned long long duplicates;    /* messages whose Message-ID was seen before */
	unsigned long long no_message_id; /* messages without a Message-ID header */
	unsigned long long faults;        /* fault replies, drops and tarpitted sessions */
	unsigned long long bytes;         /* message bytes accepted */
	unsigned long long txn_open;      /* mail transactions in progress now */
	unsigned long long txn_peak;      /* most transactions in progress at once */
	unsigned long long tls;           /* TLS handshakes completed (STARTTLS) */
	unsigned long long tls_resumed;   /* of those, resumed sessions (RFC 8446 §2.2) */
	unsigned long long tls_failed;    /* handshakes and TLS sessions that failed */
	uint64_t *ids;                    /* open addressing, 0 = empty */
	size_t ids_cap, ids_n;
};

void sink_count_init(struct sink_count *c);
void sink_count_cleanup(struct sink_count *c);
/* A 64-bit hash of a Message-ID (never 0). */
uint64_t sink_count_hash(const char *id, size_t len);
/* Records an accepted message; hash 0 means it had no Message-ID. */
void sink_count_message(struct sink_count *c, uint64_t id_hash, size_t nrcpts, size_t bytes);
/* A transaction began (MAIL accepted) / ended. */
void sink_count_txn_begin(struct sink_count *c);
void sink_count_txn_end(struct sink_count *c);
/* Writes the summary (no newline) into out; returns 0 or -1 when out is too small. */
int sink_count_format(const struct sink_count *c, int json, char *out, size_t outsz);

#endif
