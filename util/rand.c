/*
 * rand.c - see rand.h.  Each thread keeps a small pool of bytes from
 * OpenSSL's DRBG and refills it in one call: RAND_bytes() per id (its
 * DRBG lookup, fork check - a getpid(2) - and AES reseed bookkeeping)
 * was ~5% of the send path's CPU for two calls per message.  The pool is
 * per thread, so no lock; a child of fork() discards the forking
 * thread's pool (the only one it inherits), so parent and child never
 * hand out the same bytes.
 */
#include "util/rand.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define POOL_BYTES 512

static _Thread_local struct {
	unsigned char b[POOL_BYTES];
	size_t left; /* unused bytes at the end of b */
} pool;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void discard_pool(void)
{
	OPENSSL_cleanse(pool.b, sizeof(pool.b));
	pool.left = 0;
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, discard_pool);
}

void rand_id_bytes(void *out, size_t n)
{
	unsigned char *o = out;
	pthread_once(&atfork_once, register_atfork);
	while (n > 0) {
		if (pool.left == 0) {
			if (RAND_bytes(pool.b, POOL_BYTES) != 1)
				abort();
			pool.left = POOL_BYTES;
		}
		size_t k = n < pool.left ? n : pool.left;
		unsigned char *src = pool.b + POOL_BYTES - pool.left;
		memcpy(o, src, k);
		memset(src, 0, k); /* bytes handed out are not kept */
		pool.left -= k;
		o += k;
		n -= k;
	}
}
