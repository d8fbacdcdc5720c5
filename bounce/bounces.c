/*
 * bounces.c - bounce processing policy and its thread (see bounces.h).
 *
 * Matching: with VERP each envelope names one recipient row, so a verified
 * token decides which row the report is about, and the report's recipient
 * group for that address (or its only group) says what happened.  Without
 * a VERP address, each recipient group is matched by the returned
 * Message-ID and its Final-Recipient (Original-Recipient as fallback).
 * The classification of a DSN uses the same table as synchronous SMTP
 * rejections (mail/classify.h): Status, else the enhanced code in the
 * Diagnostic-Code when Status is only "X.0.0" (Exim's habit), plus the
 * reply code and text of the diagnostic.
 *
 * Waiting: a recipient still 'sending' has an outcome on its way to the
 * recorder - maybe the very 250 after which the receiver sent this DSN
 * (RFC 5321 section 6.1).  The bounce is not applied before that outcome:
 * bounce_process() gives the row back unprocessed (db_bounce_tx_wait), the
 * claim skips it until the recipient has left 'sending', and the thread's
 * sweep takes it again, so the events come in the order things happened
 * (delivered, then bounced).  After lease_time it is applied anyway: a
 * worker that long past its 250 is stuck, and a bounce must not wait for it
 * forever.
 */
#include "bounce/bounces.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "db/bounces.h"
#include "db/listen.h"
#include "db/settings.h"
#include "mail/classify.h"
#include "mail/verp.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/xmalloc.h"

#define BOUNCE_SWEEP_MS 5000
/* A row whose processing fails this many times in a row is set aside
 * (outcome "error") so that it cannot block the rows after it. */
#define BOUNCE_MAX_FAILURES 3

/* "bounce+...@bounce_domain": the shape of a VERP address (verified later). */
static int verp_shaped(const char *addr, const char *domain)
{
	if (addr == NULL || domain == NULL || *domain == '\0')
		return 0;
	const char *at = strrchr(addr, '@');
	return at != NULL && strncasecmp(addr, "bounce+", 7) == 0 && strcasecmp(at + 1, domain) == 0;
}

/* The enhanced code to classify: Status, unless it is a bare X.0.0 and the
 * diagnostic carries a more precise one of the same class. */
static const char *pick_status(const struct dsn_rcpt *x)
{
	size_t n = strlen(x->status);
	if (n == 0)
		return x->diag_status;
	if (n >= 5 && strcmp(x->status + 1, ".0.0") == 0 && x->diag_status[0] == x->status[0])
		return x->diag_status;
	return x->status;
}

/* The report's group for this address, else the first failed/delayed one. */
static int group_for(const struct dsn_report *r, const char *email)
{
	for (int i = 0; i < r->nrcpts; i++)
		if (strcasecmp(r->rcpts[i].final_rcpt, email) == 0 || strcasecmp(r->rcpts[i].original_rcpt, email) == 0)
			return i;
	for (int i = 0; i < r->nrcpts; i++)
		if (r->rcpts[i].action == DSN_ACTION_FAILED || r->rcpts[i].action == DSN_ACTION_DELAYED)
			return i;
	return r->nrcpts > 0 ? 0 : -1;
}

/* Whether a bounce may wait for a recipient in 'sending', and which one it
 * waits for when it does. */
struct bounce_wait {
	int allowed;            /* 0: the wait is over, or lease_time is 0 */
	int64_t recipient_id;   /* set when the bounce waits */
	char message_id[40];
};

/* 1 when the bounce must wait for row's delivery outcome (w filled). */
static int must_wait(struct db_bounce_tx *tx, const struct db_bounce_rcpt *row, struct bounce_wait *w)
{
	if (strcmp(row->status, "sending") != 0)
		return 0;
	if (!w->allowed) {
		log_warn("event=bounce_wait_over bounce_id=%" PRId64 " msg_id=%s recipient_id=%" PRId64
			 " note=\"still sending when the wait (lease_time) ended; applied now\"",
			 db_bounce_tx_id(tx), row->message_id, row->id);
		return 0;
	}
	w->recipient_id = row->id;
	snprintf(w->message_id, sizeof(w->message_id), "%s", row->message_id);
	return 1;
}

/* Applies one recipient group to a matched row; fills out.  Returns 0, 1
 * when the bounce must wait instead (nothing applied), or -1. */
static int apply(struct db_bounce_tx *tx, const struct dsn_report *r, const struct dsn_rcpt *x,
		 const struct db_bounce_rcpt *row, struct bounce_wait *w, struct bounce_rcpt_result *out, char *err,
		 size_t errlen)
{
	if (must_wait(tx, row, w))
		return 1;
	const char *enhanced = pick_status(x);
	snprintf(out->status, sizeof(out->status), "%s", enhanced);
	out->recipient_id = row->id;
	snprintf(out->message_id, sizeof(out->message_id), "%s", row->message_id);
	snprintf(out->recipient, sizeof(out->recipient), "%s", row->email);
	struct classification c = classify_reply(x->diag_code, enhanced, x->diagnostic);
	if (x->action == DSN_ACTION_FAILED && c.type == BOUNCE_NONE) {
		/* The MTA gave up without saying why: still a permanent failure. */
		c.type = BOUNCE_PERMANENT;
		c.category = "other";
	}
	out->bounce_type = bounce_type_name(c.type);
	out->category = c.category;
	struct db_bounce_outcome o = {
		.code = x->diag_code, .enhanced = enhanced, .text = x->diagnostic, .mx = x->remote_mta,
		.bounce_type = out->bounce_type, .category = c.category, .action = dsn_action_name(x->action),
		.reporting_mta = r->reporting_mta, .matched_by = out->matched_by,
		.bounce_id = db_bounce_tx_id(tx),
	};
	if (x->action == DSN_ACTION_DELAYED) {
		out->result = "delayed";
		return db_bounce_tx_delayed(tx, row->id, &o, err, errlen);
	}
	int changed = db_bounce_tx_bounce(tx, row->id, &o, err, errlen);
	if (changed < 0)
		return -1;
	out->result = changed ? "bounced" : "unchanged";
	if (changed && classify_suppresses(&c)) {
		int added = db_bounce_tx_suppress(tx, row->email, row->message_id, x->diagnostic, err, errlen);
		if (added < 0)
			return -1;
		out->suppressed = added;
	}
	log_info("event=bounce_applied bounce_id=%" PRId64 " msg_id=%s recipient_id=%" PRId64
		 " action=%s status=%s type=%s category=%s result=%s suppressed=%d matched_by=%s",
		 db_bounce_tx_id(tx), row->message_id, row->id, dsn_action_name(x->action), enhanced,
		 out->bounce_type ? out->bounce_type : "-", c.category ? c.category : "-", out->result, out->suppressed,
		 out->matched_by);
	return 0;
}

static void summarise(struct bounce_result *res)
{
	static const char *const order[] = { "bounced", "delayed", "unchanged", "unmatched" };
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (int i = 0; i < res->nrcpts; i++)
			if (res->rcpts[i].result && strcmp(res->rcpts[i].result, order[k]) == 0) {
				snprintf(res->outcome, sizeof(res->outcome), "%s", order[k]);
				return;
			}
	snprintf(res->outcome, sizeof(res->outcome), "ignored");
}

static int wanted(const struct dsn_rcpt *x)
{
	return x->action == DSN_ACTION_FAILED || x->action == DSN_ACTION_DELAYED;
}

/* The body of bounce_process() once a row is claimed: 0 done, 1 the bounce
 * waits for w->recipient_id (what was applied is to be undone), -1 error. */
static int process_claimed(struct db_bounce_tx *tx, const struct config *cfg, const unsigned char *key,
			   struct bounce_wait *w, struct bounce_result *res, char *err, size_t errlen)
{
	size_t len;
	const char *raw = db_bounce_tx_raw(tx, &len);
	struct dsn_report r;
	char perr[128];
	res->bounce_id = db_bounce_tx_id(tx);
	if (dsn_parse(raw, len, &r, perr, sizeof(perr)) < 0) {
		snprintf(res->outcome, sizeof(res->outcome), "unparsable");
		log_warn("event=bounce_unparsable bounce_id=%" PRId64 " error=\"%s\"", res->bounce_id, perr);
		return 0;
	}
	res->kind = r.kind;
	if (r.kind == DSN_NOT_BOUNCE) {
		snprintf(res->outcome, sizeof(res->outcome), "not_bounce");
		log_info("event=bounce_ignored bounce_id=%" PRId64 " reason=\"%s\"", res->bounce_id, r.not_bounce_reason);
		dsn_report_cleanup(&r);
		return 0;
	}
	const char *verp = db_bounce_tx_rcpt_to(tx);
	if (!verp_shaped(verp, cfg->bounce_domain))
		verp = r.bounce_to;
	int rc = 0;
	if (verp_shaped(verp, cfg->bounce_domain)) {
		int64_t rid = 0;
		if (key == NULL || verp_decode(key, verp, cfg->bounce_domain, &rid) < 0) {
			snprintf(res->outcome, sizeof(res->outcome), "forged_token");
			log_warn("event=bounce_forged_token bounce_id=%" PRId64 " note=\"VERP token failed the HMAC; nothing changed\"",
				 res->bounce_id);
			dsn_report_cleanup(&r);
			return 0;
		}
		struct db_bounce_rcpt row;
		int found = db_bounce_tx_recipient(tx, rid, &row, err, errlen);
		int g = group_for(&r, found == 1 ? row.email : "");
		if (found < 0) {
			rc = -1;
		} else if (g >= 0) {
			struct bounce_rcpt_result *out = &res->rcpts[res->nrcpts++];
			const struct dsn_rcpt *x = &r.rcpts[g];
			snprintf(out->recipient, sizeof(out->recipient), "%s", x->final_rcpt);
			out->action = x->action;
			snprintf(out->status, sizeof(out->status), "%s", pick_status(x));
			if (found == 0)
				out->result = "unmatched";
			else if (!wanted(x))
				out->result = "ignored";
			else {
				out->matched_by = "verp";
				rc = apply(tx, &r, x, &row, w, out, err, errlen);
			}
		}
	} else {
		for (int i = 0; i < r.nrcpts && rc == 0; i++) {
			const struct dsn_rcpt *x = &r.rcpts[i];
			struct bounce_rcpt_result *out = &res->rcpts[res->nrcpts++];
			snprintf(out->recipient, sizeof(out->recipient), "%s", x->final_rcpt);
			out->action = x->action;
			snprintf(out->status, sizeof(out->status), "%s", pick_status(x));
			if (!wanted(x)) {
				out->result = "ignored";
				continue;
			}
			struct db_bounce_rcpt row;
			int found = 0;
			if (r.orig_message_id[0] && x->final_rcpt[0])
				found = db_bounce_tx_find(tx, r.orig_message_id, x->final_rcpt, &row, err, errlen);
			if (found == 0 && r.orig_message_id[0] && x->original_rcpt[0])
				found = db_bounce_tx_find(tx, r.orig_message_id, x->original_rcpt, &row, err, errlen);
			if (found < 0) {
				rc = -1;
			} else if (found == 0) {
				out->result = "unmatched";
			} else {
				out->matched_by = "message_id";
				rc = apply(tx, &r, x, &row, w, out, err, errlen);
			}
		}
	}
	dsn_report_cleanup(&r);
	if (rc == 0)
		summarise(res);
	return rc;
}

enum bounce_process_rc bounce_process(struct db_pool *pool, const struct config *cfg, int64_t only_id,
				      struct bounce_result *res, char *err, size_t errlen)
{
	struct bounce_result *mine = NULL;
	if (res == NULL)
		res = mine = xmalloc(sizeof(*res));
	memset(res, 0, sizeof(*res));
	unsigned char key[VERP_KEY_LEN];
	int have_key = 0;
	if (cfg->bounce_domain && *cfg->bounce_domain) {
		if (db_settings_secret(pool, DB_SETTING_VERP_KEY, key, sizeof(key), err, errlen) < 0) {
			free(mine);
			return BOUNCE_PROCESS_ERROR;
		}
		have_key = 1;
	}
	struct db_bounce_tx *tx = NULL;
	int claimed = db_bounce_claim(pool, only_id, &tx, err, errlen);
	if (claimed <= 0) {
		free(mine);
		return claimed < 0 ? BOUNCE_PROCESS_ERROR : BOUNCE_PROCESS_NONE;
	}
	struct bounce_wait w = { .allowed = cfg->lease_time > 0 && db_bounce_tx_may_wait(tx) };
	int rc = process_claimed(tx, cfg, have_key ? key : NULL, &w, res, err, errlen);
	if (rc < 0) {
		db_bounce_tx_abort(tx);
		free(mine);
		return BOUNCE_PROCESS_ERROR;
	}
	if (rc == 1) {
		/* What the report said of other recipients was undone with it. */
		res->nrcpts = 0;
		snprintf(res->outcome, sizeof(res->outcome), "waiting");
		rc = db_bounce_tx_wait(tx, w.recipient_id, cfg->lease_time, err, errlen);
		if (rc == 0)
			log_info("event=bounce_waiting bounce_id=%" PRId64 " msg_id=%s recipient_id=%" PRId64
				 " max_wait_secs=%ld note=\"recipient still sending; applied once its outcome is recorded\"",
				 res->bounce_id, w.message_id, w.recipient_id, cfg->lease_time);
		free(mine);
		return rc < 0 ? BOUNCE_PROCESS_ERROR : BOUNCE_PROCESS_WAITING;
	}
	rc = db_bounce_tx_finish(tx, res->outcome, err, errlen);
	if (rc == 0)
		log_info("event=bounce_processed bounce_id=%" PRId64 " kind=%s outcome=%s recipients=%d", res->bounce_id,
			 dsn_kind_name(res->kind), res->outcome, res->nrcpts);
	free(mine);
	return rc < 0 ? BOUNCE_PROCESS_ERROR : BOUNCE_PROCESS_DONE;
}

/* --- the thread ----------------------------------------------------------- */

struct bounce_processor {
	const struct config *cfg;
	struct db_pool *pool;
	struct metrics *metrics; /* may be NULL */
	pthread_t thread;
	pthread_mutex_t mu;
	int stop;
};

static int stopping(struct bounce_processor *bp)
{
	pthread_mutex_lock(&bp->mu);
	int s = bp->stop;
	pthread_mutex_unlock(&bp->mu);
	return s;
}

/* mailferry_bounces_total{source="dsn"} for each recipient a DSN bounced. */
static void count_bounces(struct metrics *m, const struct bounce_result *res)
{
	if (m == NULL)
		return;
	for (int i = 0; i < res->nrcpts; i++) {
		const struct bounce_rcpt_result *r = &res->rcpts[i];
		if (r->result == NULL || strcmp(r->result, "bounced") != 0 || r->category == NULL)
			continue;
		char labels[160];
		snprintf(labels, sizeof(labels), "type=\"%s\",category=\"%s\",source=\"dsn\"",
			 r->bounce_type ? r->bounce_type : "permanent", r->category);
		metrics_counter_add(m, MF_M_BOUNCES, labels, 1);
	}
}

static void *processor_main(void *arg)
{
	struct bounce_processor *bp = arg;
	struct db_listener *l = db_listener_new(bp->cfg->database_url, "mailferry_bounces");
	struct bounce_result *res = xmalloc(sizeof(*res));
	int64_t failed_id = 0;
	int failures = 0;
	long waited = BOUNCE_SWEEP_MS;
	while (!stopping(bp)) {
		int w = db_listener_wait(l, 500);
		if (w == 0 && (waited += 500) < BOUNCE_SWEEP_MS)
			continue;
		waited = 0;
		if (w < 0) {
			sleep(1);
			continue;
		}
		/* Drain: every ready row, one transaction each.  A row that
		 * waits is not ready again until its recipient has left
		 * 'sending', so it is not taken again in this drain; a later
		 * sweep (or NOTIFY) takes it. */
		while (!stopping(bp)) {
			char err[512];
			enum bounce_process_rc rc = bounce_process(bp->pool, bp->cfg, 0, res, err, sizeof(err));
			if (rc == BOUNCE_PROCESS_NONE)
				break;
			if (rc == BOUNCE_PROCESS_WAITING) {
				failures = 0;
				continue;
			}
			if (rc == BOUNCE_PROCESS_DONE) {
				failures = 0;
				count_bounces(bp->metrics, res);
				continue;
			}
			log_error("event=bounce_process_failed bounce_id=%" PRId64 " error=\"%s\"", res->bounce_id, err);
			if (res->bounce_id > 0) {
				failures = res->bounce_id == failed_id ? failures + 1 : 1;
				failed_id = res->bounce_id;
				if (failures >= BOUNCE_MAX_FAILURES &&
				    db_bounce_mark(bp->pool, failed_id, "error", err, sizeof(err)) == 0) {
					log_error("event=bounce_set_aside bounce_id=%" PRId64 " failures=%d", failed_id, failures);
					failures = 0;
					continue;
				}
			}
			sleep(1);
			waited = BOUNCE_SWEEP_MS - 1000; /* retry soon, not at the next sweep */
			break;
		}
	}
	db_listener_free(l);
	free(res);
	return NULL;
}

struct bounce_processor *bounce_processor_new(const struct config *cfg, struct db_pool *pool,
					      struct metrics *metrics)
{
	struct bounce_processor *bp = xcalloc(1, sizeof(*bp));
	bp->cfg = cfg;
	bp->pool = pool;
	bp->metrics = metrics;
	pthread_mutex_init(&bp->mu, NULL);
	int e = pthread_create(&bp->thread, NULL, processor_main, bp);
	if (e != 0) {
		log_error("event=bounce_processor_start_failed error=\"%s\"", strerror(e));
		pthread_mutex_destroy(&bp->mu);
		free(bp);
		return NULL;
	}
	return bp;
}

void bounce_processor_free(struct bounce_processor *bp)
{
	if (bp == NULL)
		return;
	pthread_mutex_lock(&bp->mu);
	bp->stop = 1;
	pthread_mutex_unlock(&bp->mu);
	pthread_join(bp->thread, NULL);
	pthread_mutex_destroy(&bp->mu);
	free(bp);
}
