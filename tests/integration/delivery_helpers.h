/*
 * delivery_helpers.h - helpers shared by the delivery integration tests
 * (test_delivery.c, test_delivery_promises.c): SQL one-liners, queued
 * messages inserted as the API's committer writes them, Postfix's
 * smtp-sink in the background, and a bounded wait on an SQL count.
 * Header-only (static inline) like api_helpers.h, so each test file stays
 * independent; include it once per test file.
 */
#ifndef MF_TEST_DELIVERY_HELPERS_H
#define MF_TEST_DELIVERY_HELPERS_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "harness.h"
#include "th_smtp.h"

static inline char *q(const char *url, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline char *q(const char *url, const char *fmt, ...)
{
	char sql[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	char *r = th_sql(url, sql);
	cr_assert_not_null(r, "%s", sql);
	return r;
}

static inline long ql(const char *url, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline long ql(const char *url, const char *fmt, ...)
{
	char sql[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	char *r = th_sql(url, sql);
	cr_assert_not_null(r, "%s", sql);
	long v = strtol(r, NULL, 10);
	free(r);
	return v;
}

/*
 * Inserts n messages like the API's committer does (message row with the
 * composed body, then its recipients, whose insert NOTIFYs the queue).
 * Message k has the body "...X-Seq: k..." so the sink side can count.
 */
/* prefix: SQL run first in the same session, e.g. a SET. */
static inline void insert_messages_after(const char *url, const char *prefix, int n, const char *rcpts)
{
	free(q(url,
		"%s WITH m AS (INSERT INTO messages (id, mail_from, from_header, subject, message_id_hdr, size, body)"
		"  SELECT gen_random_uuid(), 'app@sender.test', 'App <app@sender.test>', 'hello ' || g,"
		"         g || '@sender.test', 200,"
		"         convert_to('From: App <app@sender.test>' || E'\\r\\n' || 'To: someone@ok.test' || E'\\r\\n'"
		"           || 'Subject: hello ' || g || E'\\r\\n' || 'Message-ID: <' || g || '@sender.test>' || E'\\r\\n'"
		"           || 'X-Seq: ' || g || E'\\r\\n' || E'\\r\\n' || 'Line one of message ' || g || E'\\r\\n'"
		"           || '.leading dot stays' || E'\\r\\n' || 'end' || E'\\r\\n', 'UTF8')"
		"    FROM generate_series(1, %d) g RETURNING id)"
		" INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		" SELECT m.id, r.ord, r.e, split_part(r.e, '@', 2), 'to', 'queued'"
		"   FROM m, unnest(string_to_array('%s', ',')) WITH ORDINALITY AS r(e, ord)",
		prefix, n, rcpts));
}

static inline void insert_messages(const char *url, int n, const char *rcpts)
{
	insert_messages_after(url, "", n, rcpts);
}

/* One message whose insert sends no NOTIFY (the trigger leaves the wake-up
 * to sessions that set mailferry.defer_notify; db/migrations/0010). */
static inline void insert_messages_silently(const char *url, const char *rcpts)
{
	insert_messages_after(url, "SET mailferry.defer_notify = on;", 1, rcpts);
}

/* Starts smtp-sink in the background; returns its pid. */
static inline pid_t sink_start(int port, const char *args)
{
	char *out = NULL;
	/* smtp-sink refuses to run as root without -u.  timeout(1) ends it
	 * even when a failed assertion skips sink_stop(). */
	int rc = th_run(&out, "timeout 120 /usr/sbin/smtp-sink %s %s 127.0.0.1:%d 256 >/dev/null 2>&1 & echo $!",
			geteuid() == 0 ? "-u nobody" : "", args, port);
	cr_assert_eq(rc, 0, "%s", out);
	pid_t pid = (pid_t)strtol(out, NULL, 10);
	free(out);
	cr_assert_gt(pid, 0);
	cr_assert_eq(th_smtp_wait_port(port, 5000), 0, "smtp-sink did not listen on %d", port);
	return pid;
}

/* Polls until the SQL count reaches want; returns the last count. */
static inline long wait_count(const char *url, long want, int timeout_ms, const char *sql)
{
	long t0 = th_now_ms(), v = -1;
	while (th_now_ms() - t0 < timeout_ms) {
		v = ql(url, "%s", sql);
		if (v >= want)
			break;
		usleep(50000);
	}
	return v;
}

#endif
