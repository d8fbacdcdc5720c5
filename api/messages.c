/*
 * messages.c - the send API: POST /v1/messages, POST /v1/messages/batch,
 * GET /v1/messages/{id}, GET /v1/messages, POST /v1/messages/{id}/cancel
 * (INTERFACE.md "HTTP API").
 *
 * The send path: check the media type and Idempotency-Key, parse and
 * validate (api/validate.c), compose once (mail/mime.h) with a UUIDv7 id
 * and Message-ID <id@helo_name>, DKIM-signed when configured, then hand
 * the unit to the group committer (db/committer.h) and suspend.  The committer answers from its
 * thread through write_done(), which fills the response and resumes the
 * connection.  Nothing is answered 202 before the commit.
 *
 * A struct send_unit owns everything the committer borrows (requests,
 * composed bodies, strings) until write_done() frees it.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/accepted.h"
#include "api/api.h"
#include "api/domain_cache.h"
#include "api/handlers.h"
#include "api/validate.h"
#include "db/committer.h"
#include "db/accept.h"
#include "db/msgread.h"
#include "mail/address.h"
#include "mail/mime.h"
#include "util/config.h"
#include "util/cursor.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/rfc3339.h"
#include "util/uuid.h"
#include "util/xmalloc.h"

/* Everything one message needs while the committer holds it. */
struct send_msg {
	struct mail_request mr;
	struct buf body;
	char msgid[UUID_STR_LEN + 256];
	char send_at[32];
	char *from_header;
	char *metadata_json;
	char *request_json;
	char (*domains)[MF_DOMAIN_MAX + 1];
	struct db_rcpt_row *rcpts;
};

struct send_unit {
	struct api_req *req;
	struct db_write w;
	struct send_msg *msgs;
	int *index;              /* batch: the request index of each message */
	int nmsgs;
	json_t *errors;          /* batch (permissive): per-index errors */
	int batch;
	char idem_key[MF_IDEMPOTENCY_KEY_MAX + 1];
};

static const char *const kind_names[] = { "to", "cc", "bcc" };

static void send_msg_cleanup(struct send_msg *m)
{
	mail_request_cleanup(&m->mr);
	buf_cleanup(&m->body);
	free(m->from_header);
	free(m->metadata_json);
	free(m->request_json);
	free(m->domains);
	free(m->rcpts);
}

static void unit_free(struct send_unit *u)
{
	if (u == NULL)
		return;
	for (int i = 0; i < u->nmsgs; i++)
		send_msg_cleanup(&u->msgs[i]);
	if (u->w.msgs)
		db_write_cleanup(&u->w);
	free(u->msgs);
	free(u->w.msgs);
	free(u->index);
	json_decref(u->errors);
	free(u);
}

/* --- request checks ---------------------------------------------------- */

static int check_content_type(struct api_req *req)
{
	if (validate_is_json_content_type(api_req_header(req, "Content-Type")))
		return 0;
	api_problem(req, 415, "unsupported_media_type", "send the request as Content-Type: application/json");
	return -1;
}

/* Parses the body; on failure answers 400 invalid_json with the position. */
static json_t *parse_body(struct api_req *req)
{
	struct json_problem p;
	json_t *root = validate_parse_json(buf_cstr(&req->body), req->body.len, &p);
	if (root)
		return root;
	json_t *errors = json_array();
	json_array_append_new(errors, api_field_error("", p.not_utf8 ? "invalid_utf8" : "invalid_json", p.detail));
	api_problem_errors(req, 400, "invalid_json", p.detail, errors);
	/* Add the position to the problem: line, column, byte offset. */
	json_t *pj = json_loadb(req->resp.body, req->resp.body_len, 0, NULL);
	if (pj) {
		if (!p.not_utf8) {
			json_object_set_new(pj, "line", json_integer(p.line));
			json_object_set_new(pj, "column", json_integer(p.column));
		}
		json_object_set_new(pj, "position", json_integer(p.position));
		api_json(req, 400, pj);
		req->resp.content_type = "application/problem+json";
	}
	return NULL;
}

static json_t *errors_json(const struct val_errors *e, int index)
{
	json_t *a = json_array();
	for (int i = 0; i < e->n; i++) {
		json_t *x = api_field_error(e->v[i].field, e->v[i].code, e->v[i].message);
		if (index >= 0)
			json_object_set_new(x, "index", json_integer(index));
		json_array_append_new(a, x);
	}
	if (e->dropped) {
		char msg[64];
		snprintf(msg, sizeof(msg), "%d more problems not listed", e->dropped);
		json_t *x = api_field_error("", "too_many_errors", msg);
		if (index >= 0)
			json_object_set_new(x, "index", json_integer(index));
		json_array_append_new(a, x);
	}
	return a;
}

/* Idempotency-Key: 1-256 printable ASCII characters (INTERFACE.md).
 * Returns 1 present (copied to out), 0 absent, -1 invalid (answered). */
static int idempotency_key(struct api_req *req, char *out)
{
	const char *k = api_req_header(req, "Idempotency-Key");
	if (k == NULL)
		return 0;
	size_t n = strlen(k);
	int ok = n >= 1 && n <= MF_IDEMPOTENCY_KEY_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = k[i] >= 0x20 && k[i] < 0x7f;
	if (!ok) {
		json_t *errors = json_array();
		json_array_append_new(errors, api_field_error("Idempotency-Key", "invalid_value",
							      "1 to " MF_STR(MF_IDEMPOTENCY_KEY_MAX) " printable ASCII characters"));
		api_problem_errors(req, 400, "validation_failed", "the Idempotency-Key header is invalid", errors);
		return -1;
	}
	memcpy(out, k, n + 1);
	return 1;
}

static void sha256(const void *p, size_t n, unsigned char out[DB_IDEM_HASH_LEN])
{
	unsigned int len = 0;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

/* --- building a message ------------------------------------------------ */

/*
 * The request as stored in messages.request, for people reading the
 * database: without the text and HTML bodies and without the attachments'
 * bytes (each attachment keeps its name and gets its decoded size), all of
 * which are in the composed message (messages.body).  Stored twice, the
 * bodies doubled the bytes written per message and pushed a 2 KB
 * message's row past the TOAST threshold, so that every accepted message
 * was compressed in the committer's backend (measured with lz4, migration
 * 0017: 54 -> 46 us of server CPU per message; docs/benchmarks.md).
 */
static char *request_for_storage(const json_t *root, const struct mail_request *mr)
{
	json_t *copy = json_copy((json_t *)root); /* shallow: the values are shared */
	json_object_del(copy, "text");
	json_object_del(copy, "html");
	json_t *atts = json_object_get(copy, "attachments");
	if (json_is_array(atts)) {
		json_t *own = json_deep_copy(atts);
		size_t i;
		json_t *a;
		json_array_foreach(own, i, a) {
			json_object_del(a, "content");
			if (i < (size_t)mr->natts)
				json_object_set_new(a, "size", json_integer((json_int_t)mr->atts[i].len));
		}
		json_object_set_new(copy, "attachments", own);
	}
	char *s = json_dumps(copy, JSON_COMPACT);
	json_decref(copy);
	return s;
}

/* "Name <a@b>", the name quoted (RFC 5322 §3.2.4) only when it holds
 * characters that a bare phrase may not. */
static char *from_header(const struct mail_address *a)
{
	if (a->name == NULL)
		return xstrdup(a->addr);
	int bare = a->name[0] != '\0';
	for (const unsigned char *p = (const unsigned char *)a->name; *p && bare; p++)
		bare = *p >= 0x80 || *p == ' ' || (*p > 32 && *p < 127 && strchr("()<>[]:;@\\,.\"", *p) == NULL);
	if (bare)
		return xasprintf("%s <%s>", a->name, a->addr);
	json_t *s = json_string(a->name);
	char *q = json_dumps(s, JSON_ENCODE_ANY); /* a quoted string, as RFC 5322 allows */
	json_decref(s);
	char *out = xasprintf("%s <%s>", q, a->addr);
	free(q);
	return out;
}

/* Why a message could not be composed: the answer's status and problem
 * code, chosen from mime_compose()'s enum mime_status, and its detail. */
struct compose_fail {
	int status;        /* 413, 422 (sender_policy), 500 or 503 */
	const char *code;  /* "payload_too_large", "domain_not_verified", ... */
	const char *field; /* the request field at fault, or NULL */
	char msg[256];
};

/*
 * The signers of m's from domain (api/domain_cache.h: its own or its
 * closest registered parent's active keys, else the dkim_* key) and the
 * sender_policy check (docs/domains.md).  Returns 0 with dm holding a
 * snapshot reference (release it), or -1 with *f set.
 */
static int sender_domain(struct api_req *req, const struct mail_request *mr, struct domain_match *dm,
			 struct mime_params *mp, struct compose_fail *f)
{
	const struct config *cfg = req->deps->cfg;
	memset(dm, 0, sizeof(*dm));
	mp->dkim = req->deps->dkim;
	mp->dkim2 = NULL;
	if (req->deps->domains == NULL)
		return 0;
	char from_domain[MF_DOMAIN_MAX + 1];
	address_domain_lower(mr->from.addr, from_domain, sizeof(from_domain));
	char err[256];
	f->field = NULL;
	switch (domain_cache_sender(req->deps->domains, cfg->sender_policy, from_domain, dm, err, sizeof(err))) {
	case DOMAIN_SENDER_UNAVAILABLE:
		log_warn_limited("event=domain_cache_failed error=%s", err);
		*f = (struct compose_fail){ .status = 503, .code = "unavailable" };
		snprintf(f->msg, sizeof(f->msg), "the database is unavailable; nothing was queued, try again");
		return -1;
	case DOMAIN_SENDER_NOT_REGISTERED:
		*f = (struct compose_fail){ .status = 422, .code = "domain_not_registered", .field = "from" };
		snprintf(f->msg, sizeof(f->msg), "%.200s is not a registered sending domain (POST /v1/domains)",
			 from_domain);
		return -1;
	case DOMAIN_SENDER_NOT_VERIFIED:
		*f = (struct compose_fail){ .status = 422, .code = "domain_not_verified", .field = "from" };
		snprintf(f->msg, sizeof(f->msg), "%.200s is not a verified sending domain", from_domain);
		return -1;
	case DOMAIN_SENDER_OK:
	default:
		if (dm->signers[0]) {
			mp->dkim = dm->signers[0];
			mp->dkim2 = dm->signers[1];
		}
		return 0;
	}
}

/*
 * Composes m (already validated into m->mr) and fills row.  Returns 0, or
 * -1 with *f set.
 */
static int build_message(struct api_req *req, const json_t *root, struct send_msg *m,
			 struct db_msg_row *row, struct compose_fail *f)
{
	const struct config *cfg = req->deps->cfg;
	uuid_v7(row->id);
	snprintf(m->msgid, sizeof(m->msgid), "%s@%s", row->id, cfg->helo_name);
	/* Compose into a buffer with room to spare, then hold the real size
	 * against max_message_size (413, like an oversized body). */
	size_t max = (size_t)cfg->max_message_size;
	buf_init(&m->body, max + max / 2 + 65536);
	struct mime_params mp = { .message_id = m->msgid, .date = time(NULL) };
	struct domain_match dm;
	if (sender_domain(req, &m->mr, &dm, &mp, f) < 0)
		return -1;
	char err[256] = "";
	enum mime_status ms = mime_compose(&m->mr, &mp, &m->body, err, sizeof(err));
	domain_match_release(&dm);
	if (ms != MIME_OK || m->body.len > max) {
		f->field = NULL;
		int big = ms == MIME_TOO_BIG || m->body.len > max;
		f->status = big ? 413 : 500;
		f->code = big ? "payload_too_large" : "internal";
		/* The detail is cut where it always was: 28 + 227 octets fill msg. */
		if (big)
			snprintf(f->msg, sizeof(f->msg), "the composed message is larger than max_message_size (%zu bytes)", max);
		else
			snprintf(f->msg, sizeof(f->msg), "cannot compose the message: %.227s", err);
		return -1;
	}
	struct mail_request *mr = &m->mr;
	m->from_header = from_header(&mr->from);
	json_t *md = json_object_get(root, "metadata");
	m->metadata_json = json_is_object(md) ? json_dumps(md, JSON_COMPACT) : xstrdup("{}");
	m->request_json = request_for_storage(root, mr);
	m->domains = xcalloc((size_t)mr->nrcpts + 1, sizeof(*m->domains));
	m->rcpts = xcalloc((size_t)mr->nrcpts + 1, sizeof(*m->rcpts));
	for (int i = 0; i < mr->nrcpts; i++) {
		address_domain_lower(mr->rcpts[i].a.addr, m->domains[i], sizeof(m->domains[i]));
		m->rcpts[i] = (struct db_rcpt_row){ mr->rcpts[i].a.addr, m->domains[i], kind_names[mr->rcpts[i].kind] };
	}
	if (mr->send_at)
		rfc3339_format(mr->send_at, -1, m->send_at, sizeof(m->send_at));
	row->mail_from = mr->from.addr;
	row->from_header = m->from_header;
	row->subject = mr->subject;
	row->message_id_hdr = m->msgid;
	row->tags = (const char *const *)mr->tags;
	row->ntags = mr->ntags;
	row->metadata_json = m->metadata_json;
	row->request_json = m->request_json;
	row->send_at = mr->send_at ? m->send_at : NULL;
	row->body = m->body.data;
	row->body_len = m->body.len;
	row->rcpts = m->rcpts;
	row->nrcpts = mr->nrcpts;
	return 0;
}

/* --- committer answers ------------------------------------------------- */

static void answer_location(struct api_req *req, const char *id)
{
	char loc[64];
	snprintf(loc, sizeof(loc), "/v1/messages/%s", id);
	api_location(req, loc);
}

/* A stored answer (written by an older mailferry) names its message only
 * in its body. */
static void answer_replay_location(struct api_req *req, const char *body)
{
	json_t *j = json_loads(body, 0, NULL);
	const char *id = json_string_value(json_object_get(j, "id"));
	if (id)
		answer_location(req, id);
	json_decref(j);
}

/* The batch's 202: {"data":[{"id",...,"index"}],"errors":[...]}, each item
 * the message's own 202 body with its index (api/accepted.c). */
static void answer_batch(struct send_unit *u)
{
	struct buf b;
	buf_init(&b, MF_API_BATCH_ANSWER_MAX);
	buf_puts(&b, "{\"data\":[");
	for (int i = 0; i < u->nmsgs; i++) {
		const struct db_msg_row *m = &u->w.msgs[i];
		if (i)
			buf_putc(&b, ',');
		api_accepted_put(&b, m->id, &m->accepted, m->rcpts, m->nrcpts, u->index[i]);
	}
	char *errors = u->errors ? json_dumps(u->errors, JSON_COMPACT) : NULL;
	buf_puts(&b, "],\"errors\":");
	buf_puts(&b, errors ? errors : "[]");
	buf_putc(&b, '}');
	free(errors);
	api_text(u->req, 202, "application/json", buf_cstr(&b));
	buf_cleanup(&b);
}

/* The 202 of one message: the accepted one, or the original of a replay. */
static void answer_accepted(struct api_req *req, const char *id, const struct db_accepted *a,
			    const struct db_msg_row *m)
{
	struct buf b;
	buf_init(&b, MF_API_ACCEPTED_MAX);
	api_accepted_put(&b, id, a, m->rcpts, m->nrcpts, -1);
	api_text(req, 202, "application/json", buf_cstr(&b));
	buf_cleanup(&b);
	answer_location(req, id);
}

/* The accepted-messages hook (util/metrics_names.h, docs/operations.md). */
static void count_accepted(struct api_req *req, const struct db_write *w)
{
	long rcpts = 0;
	if (req->deps->metrics == NULL)
		return;
	for (int i = 0; i < w->nmsgs; i++)
		rcpts += w->msgs[i].nrcpts;
	metrics_counter_add(req->deps->metrics, MF_M_MESSAGES_ACCEPTED, NULL, (double)w->nmsgs);
	metrics_counter_add(req->deps->metrics, MF_M_RECIPIENTS_ACCEPTED, NULL, (double)rcpts);
}

static void write_done(struct db_write *w)
{
	struct send_unit *u = w->arg;
	struct api_req *req = u->req;
	switch (w->status) {
	case DB_WRITE_OK:
		count_accepted(req, w);
		if (u->batch)
			answer_batch(u);
		else
			answer_accepted(req, w->msgs[0].id, &w->msgs[0].accepted, &w->msgs[0]);
		break;
	case DB_WRITE_REPLAY:
		/* The original answer: a replay is only ever of a 202. */
		if (w->replay_stored) {
			api_text(req, 202, "application/json", w->replay_stored);
			answer_replay_location(req, w->replay_stored);
		} else {
			answer_accepted(req, w->replay_id, &w->replay, &w->msgs[0]);
		}
		api_header(req, "Idempotent-Replayed", "true");
		break;
	case DB_WRITE_IDEM_CONFLICT:
		api_problem(req, 422, "idempotency_conflict",
			    "this Idempotency-Key was used with a different request in the last 24 hours");
		break;
	case DB_WRITE_IDEM_IN_FLIGHT:
		api_problem(req, 409, "idempotency_in_flight", "a request with this Idempotency-Key is still in progress");
		break;
	case DB_WRITE_IDEM_GONE:
		/* The same stable code as in flight (INTERFACE.md names no
		 * other): the key is taken until it expires. */
		api_problem(req, 409, "idempotency_in_flight",
			    "the message of this Idempotency-Key is no longer kept, so its answer cannot be given"
			    " again; it was not sent again");
		break;
	case DB_WRITE_UNAVAILABLE:
		log_warn_limited("event=send_unavailable error=\"%s\"", w->err);
		api_retry_after(req, "1");
		api_problem(req, 503, "unavailable", "the database is unavailable; nothing was queued, try again");
		break;
	case DB_WRITE_FAILED:
	default:
		log_error("event=send_failed error=\"%s\"", w->err);
		api_problem(req, 500, "internal", "the message could not be stored; nothing was queued");
		break;
	}
	unit_free(u);
	api_req_complete(req);
}

/* Hands the unit to the committer; answers at once when it cannot. */
static enum api_result submit(struct send_unit *u)
{
	struct api_req *req = u->req;
	u->w.arg = u;
	u->w.done = write_done;
	u->w.api_key_id = req->api_key_id;
	if (db_committer_submit(req->deps->committer, &u->w) == 0)
		return API_SUSPEND;
	if (u->w.status == DB_WRITE_IDEM_IN_FLIGHT)
		api_problem(req, 409, "idempotency_in_flight", "a request with this Idempotency-Key is still in progress");
	else
		api_problem(req, 503, "unavailable", "shutting down; nothing was queued");
	unit_free(u);
	return API_DONE;
}

/* --- POST /v1/messages ------------------------------------------------- */

enum api_result api_post_message(struct api_req *req)
{
	if (check_content_type(req) < 0)
		return API_DONE;
	struct send_unit *u = xcalloc(1, sizeof(*u));
	u->req = req;
	int has_key = idempotency_key(req, u->idem_key);
	if (has_key < 0) {
		unit_free(u);
		return API_DONE;
	}
	json_t *root = parse_body(req);
	if (root == NULL) {
		unit_free(u);
		return API_DONE;
	}
	u->msgs = xcalloc(1, sizeof(*u->msgs));
	u->w.msgs = xcalloc(1, sizeof(*u->w.msgs));
	struct val_errors e;
	val_errors_init(&e);
	if (validate_send(root, &u->msgs[0].mr, &e) < 0) {
		api_problem_errors(req, 422, "validation_failed", "the send request is invalid", errors_json(&e, -1));
		val_errors_cleanup(&e);
		json_decref(root);
		unit_free(u);
		return API_DONE;
	}
	val_errors_cleanup(&e);
	u->nmsgs = 1;
	u->w.nmsgs = 1;
	struct compose_fail f;
	int rc = build_message(req, root, &u->msgs[0], &u->w.msgs[0], &f);
	json_decref(root);
	if (rc < 0) {
		if (f.field)
			api_problem_errors(req, f.status, f.code, f.msg,
					   json_pack("[o]", api_field_error(f.field, f.code, f.msg)));
		else
			api_problem(req, f.status, f.code, f.msg);
		unit_free(u);
		return API_DONE;
	}
	if (has_key) {
		u->w.idem_key = u->idem_key;
		sha256(req->body.data, req->body.len, u->w.idem_hash);
	}
	return submit(u);
}

/* --- POST /v1/messages/batch ------------------------------------------- */

enum api_result api_post_message_batch(struct api_req *req)
{
	if (check_content_type(req) < 0)
		return API_DONE;
	const char *mode = api_req_query(req, "validation");
	int permissive = mode && strcmp(mode, "permissive") == 0;
	if (mode && !permissive && strcmp(mode, "strict") != 0) {
		json_t *errors = json_array();
		json_array_append_new(errors, api_field_error("validation", "invalid_value", "strict or permissive"));
		api_problem_errors(req, 400, "validation_failed", "unknown validation mode", errors);
		return API_DONE;
	}
	json_t *root = parse_body(req);
	if (root == NULL)
		return API_DONE;
	json_t *items = json_object_get(root, "messages");
	const char *why = NULL;
	if (!json_is_object(root))
		why = "the body must be an object {\"messages\": [...]}";
	else if (!json_is_array(items) || json_array_size(items) == 0)
		why = "messages must be a non-empty array of send requests";
	else if (json_array_size(items) > MF_BATCH_MAX)
		why = "at most " MF_STR(MF_BATCH_MAX) " messages per batch";
	else if (json_object_size(root) != 1)
		why = "only \"messages\" is allowed at the top level";
	if (why) {
		json_t *errors = json_array();
		json_array_append_new(errors, api_field_error("messages", "invalid_value", why));
		api_problem_errors(req, 422, "validation_failed", why, errors);
		json_decref(root);
		return API_DONE;
	}
	size_t n = json_array_size(items);
	struct send_unit *u = xcalloc(1, sizeof(*u));
	u->req = req;
	u->batch = 1;
	u->msgs = xcalloc(n, sizeof(*u->msgs));
	u->w.msgs = xcalloc(n, sizeof(*u->w.msgs));
	u->index = xcalloc(n, sizeof(int));
	u->errors = json_array();
	for (size_t i = 0; i < n; i++) {
		struct val_errors e;
		val_errors_init(&e);
		struct send_msg *m = &u->msgs[u->nmsgs];
		const json_t *item = json_array_get(items, i);
		if (validate_send(item, &m->mr, &e) < 0) {
			json_t *ej = errors_json(&e, (int)i);
			json_array_extend(u->errors, ej);
			json_decref(ej);
			val_errors_cleanup(&e);
			continue;
		}
		val_errors_cleanup(&e);
		struct compose_fail f;
		if (build_message(req, item, m, &u->w.msgs[u->nmsgs], &f) < 0) {
			json_t *x = api_field_error(f.field ? f.field : "", f.code, f.msg);
			json_object_set_new(x, "index", json_integer((json_int_t)i));
			json_array_append_new(u->errors, x);
			send_msg_cleanup(m);
			memset(m, 0, sizeof(*m));
			continue;
		}
		u->index[u->nmsgs++] = (int)i;
	}
	json_decref(root);
	u->w.nmsgs = u->nmsgs;
	if (json_array_size(u->errors) > 0 && (!permissive || u->nmsgs == 0)) {
		json_t *errors = u->errors;
		u->errors = NULL;
		api_problem_errors(req, 422, "validation_failed",
				   permissive ? "no message of the batch is valid; nothing was queued"
					      : "some messages are invalid; nothing was queued (see ?validation=permissive)",
				   errors);
		unit_free(u);
		return API_DONE;
	}
	return submit(u);
}

/* --- GET /v1/messages/{id} --------------------------------------------- */

static void answer_db_error(struct api_req *req, const char *err)
{
	log_warn_limited("event=db_read_failed route=%s error=\"%s\"", req->route, err);
	api_problem(req, 503, "unavailable", "the database is unavailable; try again");
}

/* Answers with the message JSON that fn (db_message_get or _cancel) gives
 * for the id in the path; 404 for an unknown or malformed id. */
static enum api_result answer_message(struct api_req *req,
				      int (*fn)(struct db_pool *, const char *, char **, char *, size_t))
{
	const char *id = req->params[0];
	char *json = NULL, err[512] = "";
	int rc = uuid_valid(id) ? fn(req->deps->pool, id, &json, err, sizeof(err)) : 0;
	if (rc < 0)
		answer_db_error(req, err);
	else if (rc == 0)
		api_problem(req, 404, "not_found", "no message with this id");
	else
		api_text(req, 200, "application/json", json);
	free(json);
	return API_DONE;
}

enum api_result api_get_message(struct api_req *req)
{
	return answer_message(req, db_message_get);
}

/* --- POST /v1/messages/{id}/cancel ------------------------------------- */

enum api_result api_cancel_message(struct api_req *req)
{
	return answer_message(req, db_message_cancel);
}

/* --- GET /v1/messages -------------------------------------------------- */

static const char *const list_statuses[] = {
	"queued", "scheduled", "sending", "deferred", "delivered", "bounced", "failed", "suppressed",
	"canceled", "partial", NULL,
};

enum api_result api_list_messages(struct api_req *req)
{
	struct db_list_query q = { .limit = MF_LIST_LIMIT_DEFAULT };
	json_t *errors = json_array();
	char after_ts[32] = "", before_ts[32] = "", cursor_id[UUID_STR_LEN];
	q.status = api_req_query(req, "status");
	if (q.status) {
		int ok = 0;
		for (int i = 0; list_statuses[i]; i++)
			ok |= strcmp(q.status, list_statuses[i]) == 0;
		if (!ok)
			json_array_append_new(errors, api_field_error("status", "invalid_value", "not a message status"));
	}
	q.recipient = api_req_query(req, "recipient");
	q.tag = api_req_query(req, "tag");
	const char *names[] = { "created_after", "created_before" };
	char *bufs[] = { after_ts, before_ts };
	for (int i = 0; i < 2; i++) {
		const char *v = api_req_query(req, names[i]);
		time_t t;
		if (v == NULL)
			continue;
		if (validate_rfc3339(v, &t) < 0) {
			json_array_append_new(errors, api_field_error(names[i], "invalid_datetime", "expected RFC 3339"));
			continue;
		}
		rfc3339_format(t, -1, bufs[i], 32);
	}
	q.created_after = after_ts[0] ? after_ts : NULL;
	q.created_before = before_ts[0] ? before_ts : NULL;
	const char *lim = api_req_query(req, "limit");
	if (lim) {
		char *end;
		long l = strtol(lim, &end, 10);
		if (*lim == '\0' || *end || l < 1 || l > MF_LIST_LIMIT_MAX)
			json_array_append_new(errors, api_field_error("limit", "invalid_value", "a number from 1 to " MF_STR(MF_LIST_LIMIT_MAX)));
		else
			q.limit = (int)l;
	}
	const char *after = api_req_query(req, "after");
	if (after) {
		/* util/cursor.h: base64url("m1:" + last id). */
		if (cursor_decode(after, "m1", cursor_id, sizeof(cursor_id)) < 0 || !uuid_valid(cursor_id))
			json_array_append_new(errors, api_field_error("after", "invalid_value",
								      "not a cursor returned by this endpoint"));
		else
			q.before_id = cursor_id;
	}
	if (json_array_size(errors) > 0) {
		api_problem_errors(req, 400, "validation_failed", "invalid query parameters", errors);
		return API_DONE;
	}
	json_decref(errors);
	char *data = NULL, last[UUID_STR_LEN] = "", err[512] = "";
	int has_more = 0;
	if (db_message_list(req->deps->pool, &q, &data, &has_more, last, err, sizeof(err)) < 0) {
		answer_db_error(req, err);
		return API_DONE;
	}
	char cursor[CURSOR_LEN] = "";
	if (has_more && last[0] && cursor_encode("m1", last, cursor, sizeof(cursor)) < 0)
		cursor[0] = '\0';
	struct buf out;
	buf_init(&out, strlen(data) + MF_API_LIST_WRAP);
	buf_printf(&out, "{\"data\":%s,\"has_more\":%s,\"next_cursor\":", data, has_more ? "true" : "false");
	if (cursor[0])
		buf_printf(&out, "\"%s\"}", cursor);
	else
		buf_puts(&out, "null}");
	api_text(req, 200, "application/json", buf_cstr(&out));
	buf_cleanup(&out);
	free(data);
	return API_DONE;
}
