/*
 * submit.c - the SMTP submission listener (see submit.h).
 *
 * The SMTP protocol is smtpd/smtp_server.c's; this file only decides:
 * who may send (AUTH), to whom (RCPT) and what (the end of DATA).  Each
 * decision runs on the session's thread and may block on the database,
 * so a 250 to the final dot means the message and its recipients are
 * committed, exactly as a 202 of the API does: the unit goes to the same
 * group committer and the session thread waits for its done() callback.
 */
#include "submit/submit.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/committer.h"
#include "db/suppressions.h"
#include "mail/address.h"
#include "mail/dkim.h"
#include "smtpd/smtp_server.h"
#include "submit/submit_msg.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/json_escape.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/uuid.h"
#include "util/xmalloc.h"

/* AUTH failures of one client address (submit.h: the backoff). */
struct auth_fail {
	char peer[64];
	int failures;
	long until_ms; /* no AUTH looked at before this (monotonic) */
	long seen_ms;
};

struct submit {
	struct submit_params p;
	struct smtp_server *srv;
	pthread_mutex_t lock; /* fails[], active */
	struct auth_fail fails[MF_SUBMIT_AUTH_TRACKED];
	int active;           /* sessions open (the gauge) */
};

/* What a session learnt at AUTH (the server's per-session pointer). */
struct submit_session {
	int64_t key_id;
};

static long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- metrics (util/metrics_names.h MF_M_SUBMIT_*) ---- */

static void count(struct submit *sub, const char *name, const char *help, const char *labels)
{
	if (sub->p.metrics)
		metrics_counter_add(sub->p.metrics, name, help, labels, 1);
}

static void set_active(struct submit *sub, int delta)
{
	pthread_mutex_lock(&sub->lock);
	sub->active += delta;
	if (sub->p.metrics)
		metrics_gauge_set(sub->p.metrics, MF_M_SUBMIT_ACTIVE, NULL, (double)sub->active);
	pthread_mutex_unlock(&sub->lock);
}

static void on_session_start(void *arg)
{
	struct submit *sub = arg;
	count(sub, MF_M_SUBMIT_SESSIONS, "");
	set_active(sub, 1);
}

static void on_refused(void *arg, const char *reason)
{
	struct submit *sub = arg;
	char labels[64];
	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	count(sub, MF_M_SUBMIT_REFUSED, labels);
}

/* One message's outcome (the result label of MF_M_SUBMIT_MESSAGES). */
static void count_message(struct submit *sub, const char *result)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "result=\"%s\"", result);
	count(sub, MF_M_SUBMIT_MESSAGES, labels);
}

static void count_auth(struct submit *sub, const char *result)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "result=\"%s\"", result);
	count(sub, MF_M_SUBMIT_AUTH, labels);
}

/* ---- AUTH ---- */

/* The slot of peer, or the least recently seen one (reset) when absent;
 * under sub->lock. */
static struct auth_fail *fail_slot(struct submit *sub, const char *peer, int create)
{
	struct auth_fail *old = &sub->fails[0];
	for (int i = 0; i < MF_SUBMIT_AUTH_TRACKED; i++) {
		struct auth_fail *f = &sub->fails[i];
		if (f->seen_ms && strcmp(f->peer, peer) == 0)
			return f;
		if (f->seen_ms < old->seen_ms)
			old = f;
	}
	if (!create)
		return NULL;
	memset(old, 0, sizeof(*old));
	snprintf(old->peer, sizeof(old->peer), "%s", peer);
	return old;
}

/* 1 when peer must wait before its next AUTH. */
static int auth_backing_off(struct submit *sub, const char *peer)
{
	pthread_mutex_lock(&sub->lock);
	struct auth_fail *f = fail_slot(sub, peer, 0);
	int wait = f && f->until_ms > mono_ms();
	pthread_mutex_unlock(&sub->lock);
	return wait;
}

static void auth_record(struct submit *sub, const char *peer, int ok)
{
	long now = mono_ms();
	pthread_mutex_lock(&sub->lock);
	struct auth_fail *f = fail_slot(sub, peer, !ok);
	if (f && ok) {
		memset(f, 0, sizeof(*f));
	} else if (f) {
		f->seen_ms = now;
		/* The MF_SUBMIT_AUTH_FAILURES_FREE-th failure in a row already
		 * makes the next AUTH wait (docs/submission.md). */
		if (++f->failures >= MF_SUBMIT_AUTH_FAILURES_FREE) {
			int n = f->failures - MF_SUBMIT_AUTH_FAILURES_FREE;
			long wait = MF_SUBMIT_AUTH_BACKOFF_MS;
			while (n-- > 0 && wait < MF_SUBMIT_AUTH_BACKOFF_MAX_MS)
				wait *= 2;
			f->until_ms = now + (wait < MF_SUBMIT_AUTH_BACKOFF_MAX_MS ? wait : MF_SUBMIT_AUTH_BACKOFF_MAX_MS);
		}
	}
	pthread_mutex_unlock(&sub->lock);
}

static void on_auth(void *arg, const struct smtp_server_envelope *env, const char *user, const char *pass,
		    struct smtp_server_reply *reply)
{
	struct submit *sub = arg;
	if (auth_backing_off(sub, env->peer)) {
		log_warn("event=submit_auth_backoff session=%s peer=%s", env->session, env->peer);
		count_auth(sub, "throttled");
		smtp_server_reply_set(reply, 421, "4.7.0 Too many failed authentications, try again later");
		return;
	}
	int64_t key_id = 0;
	char err[256] = "";
	enum submit_key_status st = sub->p.check_key(sub->p.check_key_arg, pass, &key_id, err, sizeof(err));
	if (st == SUBMIT_KEY_UNAVAILABLE) {
		/* RFC 4954 §6: a temporary failure, the client tries again. */
		log_warn("event=submit_auth_unavailable session=%s error=%s", env->session, err);
		count_auth(sub, "unavailable");
		smtp_server_reply_set(reply, 454, "4.7.0 Temporary authentication failure");
		return;
	}
	auth_record(sub, env->peer, st == SUBMIT_KEY_OK);
	if (st != SUBMIT_KEY_OK) {
		log_info("event=submit_auth_failed session=%s peer=%s user=%s", env->session, env->peer, user);
		count_auth(sub, "failed");
		smtp_server_reply_set(reply, 535, "5.7.8 Authentication credentials invalid");
		return;
	}
	struct submit_session *ss = *env->data;
	if (ss == NULL)
		*env->data = ss = xcalloc(1, sizeof(*ss));
	ss->key_id = key_id;
	log_info("event=submit_auth session=%s peer=%s user=%s key_id=%" PRId64, env->session, env->peer, user,
		 key_id);
	count_auth(sub, "ok");
	smtp_server_reply_set(reply, 235, "2.7.0 Authentication successful");
}

static void on_session_end(void *arg, void *data)
{
	set_active(arg, -1);
	free(data);
}

/* ---- RCPT ---- */

/* Checks an addr-spec that may hold UTF-8 (SMTPUTF8, RFC 6531 §3.3): the
 * ASCII rules apply with every non-ASCII octet standing for a letter. */
static int check_address(const char *addr, int utf8, char *err, size_t errlen)
{
	char skel[MF_ADDRESS_MAX + 1];
	snprintf(skel, sizeof(skel), "%s", addr);
	if (utf8)
		for (char *q = skel; *q; q++)
			if ((unsigned char)*q >= 0x80)
				*q = 'a';
	return address_check_spec(skel, err, errlen);
}

static void on_rcpt(void *arg, const struct smtp_server_envelope *env, const char *rcpt,
		    struct smtp_server_reply *reply)
{
	struct submit *sub = arg;
	char err[256];
	if (check_address(rcpt, env->smtputf8, err, sizeof(err)) != 0) {
		smtp_server_reply_set(reply, 501, "5.1.3 Bad recipient address: %s", err);
		return;
	}
	int r = db_suppression_get(sub->p.pool, rcpt, NULL, NULL, err, sizeof(err));
	if (r < 0) {
		log_warn("event=submit_rcpt_unavailable session=%s error=%s", env->session, err);
		smtp_server_reply_set(reply, 451, "4.3.0 Temporary failure, try again later");
	} else if (r == 1) {
		/* The API accepts and marks such a recipient suppressed; over
		 * SMTP the client hears it at once, and no message is sent. */
		smtp_server_reply_set(reply, 550, "5.7.1 Recipient address is on the suppression list");
	} else {
		smtp_server_reply_set(reply, 250, "2.1.5 Ok");
	}
}

/* ---- DATA ---- */

/* The committer's answer, waited for by the session thread. */
struct wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static void write_done(struct db_write *w)
{
	struct wait *wt = w->arg;
	pthread_mutex_lock(&wt->mu);
	wt->done = 1;
	pthread_cond_signal(&wt->cv);
	pthread_mutex_unlock(&wt->mu);
}

/* The SMTP reply for a message submit_msg_prepare() refused. */
static void refuse(struct smtp_server_reply *reply, enum submit_msg_status st, const char *why)
{
	switch (st) {
	case SUBMIT_MSG_TOO_BIG:
		smtp_server_reply_set(reply, 552, "5.3.4 Message too big: %s", why);
		break;
	case SUBMIT_MSG_8BIT:
		/* RFC 6152 §3: 8-bit data needs BODY=8BITMIME. */
		smtp_server_reply_set(reply, 554, "5.6.1 %s without BODY=8BITMIME (RFC 6152)", why);
		break;
	case SUBMIT_MSG_BARE_EOL:
		smtp_server_reply_set(reply, 554, "5.6.0 %s: lines end in CRLF (RFC 5321 §2.3.8)", why);
		break;
	case SUBMIT_MSG_LONG_LINE:
		smtp_server_reply_set(reply, 554, "5.6.0 %s (RFC 5322 §2.1.1)", why);
		break;
	case SUBMIT_MSG_NO_FROM:
		smtp_server_reply_set(reply, 554, "5.6.0 %s", why);
		break;
	default:
		smtp_server_reply_set(reply, 554, "5.6.0 %s", why);
		break;
	}
}

/* The request column: how the message came, for people reading the
 * database (never parsed back). */
static void request_json(struct buf *b, const struct smtp_server_envelope *env)
{
	buf_puts(b, "{\"source\":\"smtp\",\"session\":");
	json_escape(b, env->session, strlen(env->session), 0);
	buf_puts(b, ",\"peer\":");
	json_escape(b, env->peer, strlen(env->peer), 0);
	buf_puts(b, ",\"helo\":");
	json_escape(b, env->helo, strlen(env->helo), 0);
	buf_puts(b, ",\"user\":");
	json_escape(b, env->auth_user ? env->auth_user : "", env->auth_user ? strlen(env->auth_user) : 0, 0);
	buf_printf(b, ",\"tls\":%s%s%s,\"mail_from\":", env->tls ? "\"" : "", env->tls ? env->tls : "null",
		   env->tls ? "\"" : "");
	json_escape(b, env->mail_from, strlen(env->mail_from), 0);
	buf_puts(b, ",\"rcpt_to\":[");
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (i)
			buf_putc(b, ',');
		json_escape(b, env->rcpts[i], strlen(env->rcpts[i]), 0);
	}
	buf_puts(b, "]}");
}

/* The envelope sender to store: MAIL FROM, or for the null sender the
 * From: address (delivery uses VERP when bounce_domain is set anyway). */
static char *sender(const struct smtp_server_envelope *env, const char *from)
{
	if (env->mail_from[0])
		return xstrdup(env->mail_from);
	struct mail_address a = { 0 };
	char err[128];
	char *out = xstrdup(address_parse(from, &a, err, sizeof(err)) == 0 && a.addr ? a.addr : "");
	free(a.name);
	free(a.addr);
	return out;
}

/* Commits the prepared message; the reply says how it went. */
static void commit(struct submit *sub, const struct smtp_server_envelope *env, int64_t key_id, const char *id,
		   struct submit_msg *m, const struct buf *signed_body, struct smtp_server_reply *reply)
{
	struct buf req;
	/* Every string escaped at worst 6 octets for 1 (\u00XX). */
	buf_init(&req, 256 + (size_t)MF_JSON_ESCAPE_GROWTH * (4 * MF_SMTP_LINE_MAX + 2 * MF_SMTP_AUTH_USER_MAX +
							      (env->nrcpts + 1) * (MF_ADDRESS_MAX + 3)));
	request_json(&req, env);
	char *mail_from = sender(env, m->from);
	struct db_rcpt_row *rows = xcalloc(env->nrcpts, sizeof(*rows));
	char(*domains)[MF_DOMAIN_MAX + 1] = xcalloc(env->nrcpts, sizeof(*domains));
	for (size_t i = 0; i < env->nrcpts; i++) {
		address_domain_lower(env->rcpts[i], domains[i], sizeof(domains[i]));
		rows[i].email = env->rcpts[i];
		rows[i].domain = domains[i];
		rows[i].kind = submit_msg_kind(m, env->rcpts[i]);
	}
	struct db_msg_row row = {
		.mail_from = mail_from,
		.from_header = m->from,
		.subject = m->subject,
		.message_id_hdr = m->message_id,
		.tags = (const char *const *)m->tags,
		.ntags = m->ntags,
		.metadata_json = m->metadata.data,
		.request_json = req.data,
		.source = "smtp",
		.body = signed_body->data,
		.body_len = signed_body->len,
		.rcpts = rows,
		.nrcpts = (int)env->nrcpts,
	};
	snprintf(row.id, sizeof(row.id), "%s", id);
	/* Idempotency (INTERFACE.md "SMTP submission"): the client's own
	 * Message-ID, per key, claimed like an Idempotency-Key.  The hash is
	 * constant, so a repeat is always a replay, never a conflict: a
	 * client that lost our 250 resends the same message. */
	char idem[MF_IDEMPOTENCY_KEY_MAX + 1];
	int keyed = !m->message_id_added && strlen(m->message_id) + 5 <= MF_IDEMPOTENCY_KEY_MAX;
	if (keyed)
		snprintf(idem, sizeof(idem), "smtp:%s", m->message_id);
	struct wait wt = { .done = 0 };
	pthread_mutex_init(&wt.mu, NULL);
	pthread_cond_init(&wt.cv, NULL);
	struct db_write w = { .api_key_id = key_id, .idem_key = keyed ? idem : NULL, .msgs = &row, .nmsgs = 1,
			      .done = write_done, .arg = &wt };
	if (db_committer_submit(sub->p.committer, &w) == 0) {
		pthread_mutex_lock(&wt.mu);
		while (!wt.done)
			pthread_cond_wait(&wt.cv, &wt.mu);
		pthread_mutex_unlock(&wt.mu);
	}
	switch (w.status) {
	case DB_WRITE_OK:
		count_message(sub, "accepted");
		count(sub, MF_M_MESSAGES_ACCEPTED, NULL); /* with the API's: every message accepted */
		smtp_server_reply_set(reply, 250, "2.0.0 Ok: queued as %s", id);
		log_info("event=submit_accepted msg_id=%s session=%s rcpts=%zu size=%zu", id, env->session, env->nrcpts,
			 signed_body->len);
		break;
	case DB_WRITE_REPLAY:
		count_message(sub, "replayed");
		smtp_server_reply_set(reply, 250, "2.0.0 Ok: queued as %s", w.replay_id);
		log_info("event=submit_replayed msg_id=%s session=%s", w.replay_id, env->session);
		break;
	case DB_WRITE_IDEM_IN_FLIGHT:
		count_message(sub, "deferred");
		smtp_server_reply_set(reply, 451, "4.5.0 A message with this Message-ID is being queued, try again");
		break;
	case DB_WRITE_IDEM_CONFLICT:
	case DB_WRITE_IDEM_GONE:
		count_message(sub, "invalid");
		smtp_server_reply_set(reply, 554, "5.6.0 This Message-ID was submitted before and is no longer kept");
		break;
	case DB_WRITE_UNAVAILABLE:
	case DB_WRITE_FAILED:
	default:
		log_warn("event=submit_commit_failed session=%s status=%d error=%s", env->session, (int)w.status, w.err);
		count_message(sub, "deferred");
		smtp_server_reply_set(reply, 451, "4.3.0 Temporary failure, try again later");
		break;
	}
	db_write_cleanup(&w);
	pthread_cond_destroy(&wt.cv);
	pthread_mutex_destroy(&wt.mu);
	free(domains);
	free(rows);
	free(mail_from);
	buf_cleanup(&req);
}

/*
 * sender_policy (docs/domains.md, docs/submission.md): every address of
 * From: must be of a domain the policy allows, as the API's "from" must.
 * The envelope sender is not checked: with bounce_domain it is replaced
 * by the VERP return path, and applications and relaying MTAs often use
 * a local one (www-data@host); From: is what receivers and DMARC see.
 * 0, or -1 with the reply set.
 */
static int sender_allowed(struct submit *sub, const struct smtp_server_envelope *env, const struct submit_msg *m,
			  struct smtp_server_reply *reply)
{
	if (sub->p.check_sender == NULL || sub->p.cfg->sender_policy == SENDER_POLICY_ANY)
		return 0;
	const char *cur = m->from;
	char addr[MF_ADDRESS_MAX + 1];
	int n = 0;
	while (submit_msg_next_addr(&cur, addr, sizeof(addr))) {
		n++;
		const char *domain = strrchr(addr, '@') + 1;
		char err[256] = "";
		enum submit_sender_status st = sub->p.check_sender(sub->p.check_sender_arg, domain, err, sizeof(err));
		if (st == SUBMIT_SENDER_OK)
			continue;
		if (st == SUBMIT_SENDER_UNAVAILABLE) {
			log_warn("event=submit_sender_unavailable session=%s error=%s", env->session, err);
			count_message(sub, "deferred");
			smtp_server_reply_set(reply, 451, "4.3.0 Temporary failure, try again later");
			return -1;
		}
		int known = st == SUBMIT_SENDER_NOT_REGISTERED;
		log_info("event=submit_refused session=%s reason=%s domain=%s", env->session,
			 known ? "domain_not_registered" : "domain_not_verified", domain);
		count_message(sub, "sender_policy");
		/* The API's problem code and detail (api/messages.c). */
		if (known)
			smtp_server_reply_set(reply, 550, "5.7.1 domain_not_registered: %.200s is not a registered sending domain",
					      domain);
		else
			smtp_server_reply_set(reply, 550, "5.7.1 domain_not_verified: %.200s is not a verified sending domain",
					      domain);
		return -1;
	}
	if (n == 0) {
		count_message(sub, "sender_policy");
		smtp_server_reply_set(reply, 550, "5.7.1 domain_not_registered: From: holds no address to check");
		return -1;
	}
	return 0;
}

/*
 * The signers of the message's first From: address's domain (a message
 * with several authors names its Sender: for DMARC's sake; the first
 * author's domain is the one it signs for, RFC 6376 §3.9 leaves the choice
 * to the signer).  signers[] keeps the dkim_* signer when the domain has no
 * keys of its own.  0, or -1 with err set when the domains cannot be read.
 */
static int signers_for(struct submit *sub, const struct submit_msg *m, const struct dkim_signer *signers[2],
		       void **ref, char *err, size_t errlen)
{
	*ref = NULL;
	if (sub->p.domain_signers == NULL)
		return 0;
	const char *cur = m->from;
	char addr[MF_ADDRESS_MAX + 1];
	if (!submit_msg_next_addr(&cur, addr, sizeof(addr)))
		return 0;
	char domain[MF_DOMAIN_MAX + 1];
	address_domain_lower(addr, domain, sizeof(domain));
	const struct dkim_signer *own[2] = { NULL, NULL };
	*ref = sub->p.domain_signers(sub->p.signers_arg, domain, own, err, errlen);
	if (*ref == NULL)
		return -1;
	if (own[0]) {
		signers[0] = own[0];
		signers[1] = own[1];
	}
	return 0;
}

static void on_too_big(void *arg, const struct smtp_server_envelope *env)
{
	(void)env;
	count_message(arg, "too_big");
}

static void on_message(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
		       struct smtp_server_reply *reply)
{
	struct submit *sub = arg;
	const struct submit_session *ss = *env->data;
	if (ss == NULL) { /* the server asks for AUTH before MAIL */
		smtp_server_reply_set(reply, 530, "5.7.0 Authentication required");
		return;
	}
	char id[UUID_STR_LEN];
	uuid_v7(id);
	/* SIZE advertises max_message_size for what the client sends; our
	 * Received: line and the Date: / Message-ID: we may add come on top
	 * (the server's buffer already allows for the trace line), and the
	 * DKIM-Signature on top of that. */
	size_t max = (size_t)sub->p.cfg->max_message_size + MF_SMTP_SERVER_TRACE_MAX + MF_SUBMIT_ADDED_HEADERS_MAX;
	struct submit_msg_params mp = {
		.body_8bitmime = env->body_8bitmime,
		.smtputf8 = env->smtputf8,
		.msgid_domain = sub->p.cfg->helo_name,
		.msgid_local = id,
		.date = (long)time(NULL),
		.max_size = max,
	};
	struct submit_msg m;
	enum submit_msg_status st = submit_msg_prepare(data, len, &mp, &m);
	if (st != SUBMIT_MSG_OK) {
		log_info("event=submit_refused session=%s reason=%s", env->session, m.why);
		count_message(sub, st == SUBMIT_MSG_TOO_BIG ? "too_big" : "invalid");
		refuse(reply, st, m.why);
		submit_msg_cleanup(&m);
		return;
	}
	if (sender_allowed(sub, env, &m, reply) != 0) {
		submit_msg_cleanup(&m);
		return;
	}
	/* DKIM over the message as it will be stored and sent, with the
	 * signers the API would use for this From: domain (mime_compose()
	 * calls the same dkim_sign()). */
	struct buf out;
	buf_init(&out, max + 2 * MF_DKIM_SIGNATURE_MAX);
	char err[256];
	const struct dkim_signer *signers[2] = { sub->p.dkim, NULL };
	void *ref = NULL;
	int sign_rc = signers_for(sub, &m, signers, &ref, err, sizeof(err));
	for (int i = 0; sign_rc == 0 && i < 2; i++)
		if (signers[i] && dkim_sign(signers[i], m.body.data, m.body.len, &out, err, sizeof(err)) != 0)
			sign_rc = -1;
	if (ref)
		sub->p.release_signers(sub->p.signers_arg, ref);
	if (sign_rc != 0) {
		log_error("event=submit_dkim_failed session=%s error=%s", env->session, err);
		count_message(sub, "deferred");
		smtp_server_reply_set(reply, 451, "4.3.0 Temporary failure (signing), try again later");
	} else if (buf_append(&out, m.body.data, m.body.len) != 0) {
		count_message(sub, "too_big");
		smtp_server_reply_set(reply, 552, "5.3.4 Message too big");
	} else {
		commit(sub, env, ss->key_id, id, &m, &out, reply);
	}
	buf_cleanup(&out);
	submit_msg_cleanup(&m);
}

/* ---- the listener ---- */

struct submit *submit_new(const struct submit_params *params, char *err, size_t errlen)
{
	const struct config *cfg = params->cfg;
	struct submit *sub = xcalloc(1, sizeof(*sub));
	sub->p = *params;
	pthread_mutex_init(&sub->lock, NULL);
	if (sub->p.metrics)
		metrics_gauge_set(sub->p.metrics, MF_M_SUBMIT_ACTIVE, NULL, 0);
	struct smtp_server_params sp = {
		.listen = cfg->submission_listen,
		.hostname = cfg->helo_name,
		.max_message_size = (size_t)cfg->max_message_size,
		.max_sessions = MF_SUBMIT_SESSIONS_MAX,
		.idle_timeout_ms = (int)(cfg->submission_command_timeout * 1000),
		.greet_wait_ms = (int)(cfg->submission_greet_wait * 1000),
		.max_sessions_per_addr = MF_SUBMIT_SESSIONS_PER_ADDR,
		.session_timeout_ms = MF_SUBMIT_SESSION_TIMEOUT_MS,
		.tls_cert_file = cfg->submission_tls_cert_file,
		.tls_key_file = cfg->submission_tls_key_file,
		.implicit_tls = cfg->submission_tls == TLS_MODE_IMPLICIT,
		.smtputf8 = 1,
		.max_rcpts = MF_SUBMIT_RCPTS_MAX,
		.max_messages = MF_SUBMIT_MESSAGES_PER_SESSION,
		.strict_pipelining = 1,
		.auth_plaintext_loopback = cfg->submission_allow_plaintext_auth,
		.arg = sub,
		.on_auth = on_auth,
		.on_session_start = on_session_start,
		.on_session_end = on_session_end,
		.on_refused = on_refused,
		.on_too_big = on_too_big,
		.on_rcpt = on_rcpt,
		.on_message = on_message,
	};
	sub->srv = smtp_server_new(&sp, err, errlen);
	if (sub->srv == NULL) {
		pthread_mutex_destroy(&sub->lock);
		free(sub);
		return NULL;
	}
	return sub;
}

int submit_port(const struct submit *sub)
{
	return smtp_server_port(sub->srv);
}

int submit_reload_tls(struct submit *sub, const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	if (cert_file == NULL || key_file == NULL) {
		snprintf(err, errlen, "submission_tls_cert_file and submission_tls_key_file are not set");
		return -1;
	}
	return smtp_server_reload_tls(sub->srv, cert_file, key_file, err, errlen);
}

void submit_free(struct submit *sub)
{
	if (sub == NULL)
		return;
	smtp_server_free(sub->srv);
	pthread_mutex_destroy(&sub->lock);
	free(sub);
}
