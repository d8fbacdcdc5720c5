/*
 * count.c - the sink's counters and its Message-ID set (see count.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/count.h"
#include "util/xmalloc.h"

void sink_count_init(struct sink_count *c)
{
	memset(c, 0, sizeof(*c));
}

void sink_count_cleanup(struct sink_count *c)
{
	free(c->ids);
	c->ids = NULL;
	c->ids_cap = c->ids_n = 0;
}

/* FNV-1a, then a final mix (splitmix64's) so that the low bits, which
 * pick the slot, depend on every byte. */
uint64_t sink_count_hash(const char *id, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)id[i];
		h *= 1099511628211ULL;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h ? h : 1;
}

/* Inserts h; returns 1 when it was already there. */
static int ids_insert(uint64_t *ids, size_t cap, uint64_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
		if (ids[i] == h)
			return 1;
		if (ids[i] == 0) {
			ids[i] = h;
			return 0;
		}
	}
}

static void ids_grow(struct sink_count *c)
{
	size_t cap = c->ids_cap ? c->ids_cap * 2 : 1024;
	uint64_t *ids = xcalloc(cap, sizeof(*ids));
	for (size_t i = 0; i < c->ids_cap; i++)
		if (c->ids[i] != 0)
			ids_insert(ids, cap, c->ids[i]);
	free(c->ids);
	c->ids = ids;
	c->ids_cap = cap;
}

void sink_count_message(struct sink_count *c, uint64_t id_hash, size_t nrcpts, size_t bytes)
{
	c->messages++;
	c->recipients += nrcpts;
	c->bytes += bytes;
	if (id_hash == 0) {
		c->no_message_id++;
		return;
	}
	/* Load factor at most 1/2. */
	if ((c->ids_n + 1) * 2 > c->ids_cap)
		ids_grow(c);
	if (ids_insert(c->ids, c->ids_cap, id_hash))
		c->duplicates++;
	else
		c->ids_n++;
}

void sink_count_txn_begin(struct sink_count *c)
{
	if (++c->txn_open > c->txn_peak)
		c->txn_peak = c->txn_open;
}

void sink_count_txn_end(struct sink_count *c)
{
	if (c->txn_open > 0)
		c->txn_open--;
}

int sink_count_format(const struct sink_count *c, int json, char *out, size_t outsz)
{
	const char *fmt = json ? "{\"sessions\":%llu,\"open\":%llu,\"peak\":%llu,\"messages\":%llu,"
				 "\"recipients\":%llu,\"duplicates\":%llu,\"no_message_id\":%llu,"
				 "\"faults\":%llu,\"bytes\":%llu,\"txn_peak\":%llu,\"tls\":%llu,"
				 "\"tls_resumed\":%llu,\"tls_failed\":%llu}"
			       : "sessions=%llu open=%llu peak=%llu messages=%llu recipients=%llu "
				 "duplicates=%llu no_message_id=%llu faults=%llu bytes=%llu txn_peak=%llu "
				 "tls=%llu tls_resumed=%llu tls_failed=%llu";
	int n = snprintf(out, outsz, fmt, c->sessions, c->open, c->peak, c->messages, c->recipients, c->duplicates,
			 c->no_message_id, c->faults, c->bytes, c->txn_peak, c->tls, c->tls_resumed, c->tls_failed);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}
