/*
 * accept.c - the SQL of the accept path (see accept.h).
 *
 * db_group_send() writes a whole group of units with a handful of
 * statements whatever its size, in one pipelined round trip: idempotency
 * keys are claimed with one INSERT .. ON CONFLICT (sql_claim), messages go
 * in one multi-row INSERT, recipients in one INSERT over unnest()ed arrays
 * (suppressed addresses are marked there), their events (no stored
 * payload: mf_event_doc() builds it on read) and the message statuses in
 * one statement (sql_accept); units whose key was already used are left
 * out of both.  What the 202 bodies need is read back from those
 * statements into each message's struct db_accepted (only the statuses
 * that are not 'queued' come back); a replay of an Idempotency-Key gets
 * the same struct, filled from the original message (see sql_claim).
 * api/accepted.c renders both.
 * Parameterised queries only: values travel as parameters or as array
 * literals built by array_add(), never inside SQL text.
 */
#include "db/accept.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "util/buf.h"
#include "util/hex.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define ARRAY_MAX MF_PG_VALUE_MAX

static void array_start(struct buf *b)
{
	buf_init(b, ARRAY_MAX);
	buf_putc(b, '{');
}

static void array_end(struct buf *b)
{
	buf_putc(b, '}');
}

/* Appends one element to an array literal begun by array_start(): quoted,
 * with '"' and '\\' escaped (PostgreSQL manual, "Array Value Input"). */
static void array_add(struct buf *b, const char *s)
{
	if (b->len > 1)
		buf_putc(b, ',');
	buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			buf_putc(b, '\\');
		buf_putc(b, *s);
	}
	buf_putc(b, '"');
}

static void array_add_or_null(struct buf *b, const char *s)
{
	if (s != NULL) {
		array_add(b, s);
		return;
	}
	if (b->len > 1)
		buf_putc(b, ',');
	buf_puts(b, "NULL");
}

static void array_add_int(struct buf *b, int64_t v)
{
	char num[32];
	snprintf(num, sizeof(num), "%" PRId64, v);
	array_add(b, num);
}

#define MSG_COLS 13

/*
 * The group's statements are prepared once per connection
 * (db_messages_prepare) so that a commit pays no parse or plan.  The
 * message INSERT is prepared for every row count up to MSG_CHUNK_MAX, so
 * a group of up to that many messages is one statement (larger groups are
 * cut into chunks of MSG_CHUNK_MAX and one for the rest).
 */
#define MSG_CHUNK_MAX 64

/*
 * Everything after the message rows, in one statement: the recipients
 * (suppressed addresses - the table is keyed by the lower-cased address -
 * recorded as such at once; a future send_at makes them 'scheduled'),
 * one accept event each (no stored payload: mf_event_doc() builds it on
 * read, migration 0012), and the status of the messages with a recipient
 * that is not 'queued' (mf_status_summary over the rows just inserted: a
 * message's recipients all arrive in this statement).  It returns what
 * the 202 bodies need and is rare - ('r', message, position, status) per
 * non-queued recipient, ('m', message, -, status) per such message - and
 * ('t', -, -, the transaction's timestamp, every message's created_at).
 */
/* The units (message id, api key id, key) whose key this transaction did
 * not win, as an array: computed once per statement (an InitPlan), each
 * key found by its primary key. */
#define SQL_LOSERS(mid, kid, key)                                                                         \
	"ARRAY(SELECT k.mid FROM unnest(" mid "::uuid[], " kid "::bigint[], " key "::text[]) AS k(mid, kid, key)" \
	" WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys i"                                             \
	"                    WHERE i.api_key_id = k.kid AND i.key = k.key AND i.message_id = k.mid OFFSET 0))"

#define SQL_ACCEPT_INS(filter)                                                                            \
	"WITH ins AS ("                                                                                   \
	"  INSERT INTO recipients (message_id, position, email, domain, kind, status, next_attempt_at)"   \
	"  SELECT u.mid, u.pos, u.email, u.domain, u.kind,"                                              \
	"         CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.email = lower(u.email)) THEN 'suppressed'" \
	"              WHEN u.send_at > now() THEN 'scheduled' ELSE 'queued' END,"                       \
	"         greatest(coalesce(u.send_at, now()), now())"                                           \
	"    FROM unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])" \
	"         WITH ORDINALITY AS u(mid, pos, email, domain, kind, send_at, ord)"                     \
	filter                                                                                            \
	"   ORDER BY u.ord"                                                                              \
	"  RETURNING id, message_id, position, status, email, kind),"                                    \
	" ev AS ("                                                                                        \
	"  INSERT INTO events (message_id, recipient_id, type)"                                          \
	"  SELECT message_id, id, CASE WHEN status = 'suppressed' THEN 'message.suppressed' ELSE 'message.queued' END" \
	"    FROM ins ORDER BY id),"                                                                      \
	" summary AS ("                                                                                   \
	"  SELECT message_id,"                                                                            \
	"         mf_status_summary(count(DISTINCT status), min(status), bool_and(mf_status_terminal(status))) AS st" \
	"    FROM ins GROUP BY message_id HAVING bool_or(status <> 'queued')),"                           \
	" upd AS ("                                                                                       \
	"  UPDATE messages m SET status = s.st, updated_at = now() FROM summary s"                        \
	"   WHERE m.id = s.message_id AND m.status IS DISTINCT FROM s.st)"

#define SQL_ACCEPT_ROWS                                                                                   \
	" SELECT 'r', message_id::text, position, status FROM ins WHERE status <> 'queued'"              \
	" UNION ALL SELECT 'm', message_id::text, NULL, st FROM summary"                                  \
	" UNION ALL SELECT 't', NULL, NULL, mf_ts(now())"

static const char sql_accept[] = SQL_ACCEPT_INS("") SQL_ACCEPT_ROWS;

/*
 * Groups with Idempotency-Keys (migration 0015).  sql_claim inserts each
 * key with the id of the message its unit would create; a key already
 * there and younger than 24 hours (INTERFACE.md) is left alone - ON
 * CONFLICT first waits for another transaction that holds it - and an
 * expired one is taken over as if new.  The units that lost their claim
 * are thus those whose key row names another message: the keyed variants
 * of the message INSERT and of sql_accept leave their rows out
 * (SQL_LOSERS), and sql_losers returns what each loser gets: (unit, same
 * request?, the key row's status_code - 0 while in flight, the column's
 * legacy marker of "answered" otherwise - stored answer, and the original
 * message's accept-time state).
 *
 * The answer of a winner is made in api/ like any other (from its struct
 * db_accepted), and nothing of it is stored: a key row commits with its
 * message, so it is answered from the start.  A replay gets the same
 * struct, filled from what the original answer was made of - the message's id and
 * created_at, and each recipient's status at accept, which its first
 * event and send_at record (suppressed: 'message.suppressed'; scheduled:
 * send_at after created_at; else queued) - with the replaying request's
 * own recipients, which are the original's (same SHA-256 of the body): so
 * the replay renders as the original answer byte for byte, whatever happened to
 * the message since.  (Building the body in SQL and storing it with the
 * key cost 12-16 us of the backend per message: docs/benchmarks.md.)  Key
 * rows written before that change carry their stored answer, which wins.
 * Every lookup these add is by primary key or by message id, whatever the
 * statistics the plans were made with (db_messages_prepare).  $7..$9 of sql_accept_keyed
 * (and the last three of the message INSERT) are the keyed units' message
 * ids, api key ids and keys.
 */
static const char sql_claim[] =
	"INSERT INTO idempotency_keys (api_key_id, key, request_hash, message_id, status_code)"
	" SELECT u.kid, u.key, decode(u.hash, 'hex'), u.mid, 202"
	"   FROM unnest($1::bigint[], $2::text[], $3::text[], $4::uuid[]) AS u(kid, key, hash, mid)"
	" ON CONFLICT (api_key_id, key) DO UPDATE"
	"   SET request_hash = EXCLUDED.request_hash, status_code = 202, response = NULL,"
	"       message_id = EXCLUDED.message_id, created_at = now()"
	"   WHERE idempotency_keys.created_at < now() - interval '24 hours'";

static const char sql_accept_keyed[] =
	SQL_ACCEPT_INS("   WHERE u.mid <> ALL (" SQL_LOSERS("$7", "$8", "$9") ")") SQL_ACCEPT_ROWS;

/* The accept-time answer of message id (see above): created_at, the
 * message's status, the recipients' statuses comma-separated in position
 * order, and whether every recipient still has its accept event (event
 * retention may be shorter than a key's 24 hours). */
#define SQL_ACCEPT_TIME_ANSWER(id)                                                                        \
	"SELECT mf_ts(m.created_at) AS created_at,"                                                       \
	"       mf_status_summary(count(DISTINCT s.st), min(s.st), bool_and(mf_status_terminal(s.st))) AS st," \
	"       string_agg(s.st, ',' ORDER BY s.position) AS rst, bool_and(s.ev IS NOT NULL) AS complete" \
	"  FROM messages m,"                                                                             \
	"       LATERAL (SELECT r.position, e.ev,"                                                       \
	"                       CASE WHEN e.ev = 'message.suppressed' THEN 'suppressed'"                 \
	"                            WHEN m.send_at > m.created_at THEN 'scheduled' ELSE 'queued' END AS st" \
	"                  FROM recipients r,"                                                           \
	"                       LATERAL (SELECT (SELECT e.type FROM events e"                            \
	"                                         WHERE e.message_id = m.id AND e.recipient_id = r.id"   \
	"                                         ORDER BY e.id LIMIT 1) AS ev OFFSET 0) e"              \
	"                 WHERE r.message_id = m.id OFFSET 0) s"                                         \
	" WHERE m.id = " id                                                                               \
	" GROUP BY m.id"

static const char sql_losers[] =
	"SELECT u.ord, coalesce(x.request_hash = decode(u.hash, 'hex'), false), coalesce(x.status_code, 0),"
	"       coalesce(x.response, ''), x.message_id, a.created_at, a.st, a.rst, a.complete"
	"  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::uuid[]) WITH ORDINALITY AS u(kid, key, hash, mid, ord)"
	"  LEFT JOIN LATERAL (SELECT i.message_id, i.request_hash, i.status_code, i.response FROM idempotency_keys i"
	"                      WHERE i.api_key_id = u.kid AND i.key = u.key OFFSET 0) x ON true"
	"  LEFT JOIN LATERAL (" SQL_ACCEPT_TIME_ANSWER("x.message_id") " OFFSET 0) a"
	"         ON x.response IS NULL AND x.request_hash = decode(u.hash, 'hex')"
	" WHERE x.message_id IS DISTINCT FROM u.mid";

/* The multi-row message INSERT for rows rows; keyed: without the units
 * that lost their key (three more parameters, see sql_claim). */
static void messages_sql(struct buf *sql, int rows, int keyed)
{
	buf_puts(sql, "INSERT INTO messages (id, api_key_id, send_at, mail_from, from_header, subject,"
		      " message_id_hdr, tags, metadata, size, body, request, source) ");
	buf_puts(sql, keyed ? "SELECT * FROM (VALUES " : "VALUES ");
	for (int r = 0; r < rows; r++) {
		int k = r * MSG_COLS;
		buf_printf(sql, "%s($%d::uuid, $%d::bigint, $%d::timestamptz, $%d, $%d, $%d, $%d, $%d::text[],"
			   " $%d::jsonb, $%d::integer, $%d::bytea, $%d, $%d)",
			   r ? "," : "", k + 1, k + 2, k + 3, k + 4, k + 5, k + 6, k + 7, k + 8, k + 9, k + 10, k + 11,
			   k + 12, k + 13);
	}
	if (keyed) {
		int p = rows * MSG_COLS;
		char a[3][8];
		for (int i = 0; i < 3; i++)
			snprintf(a[i], sizeof(a[i]), "$%d", p + 1 + i);
		buf_puts(sql, ") AS v(id) WHERE v.id <> ALL (");
		buf_printf(sql, SQL_LOSERS("%s", "%s", "%s"), a[0], a[1], a[2]);
		buf_putc(sql, ')');
	}
}

static int prepare(PGconn *c, const char *name, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQprepare(c, name, sql, 0, NULL);
	int ok = db_res_ok(res, PGRES_COMMAND_OK);
	if (!ok)
		db_set_error(c, res, err, errlen);
	PQclear(res);
	return ok ? 0 : -1;
}

/*
 * Prepares the group's statements on a new committer connection.  Their
 * generic plans are made once, from the statistics of that moment: on a
 * fresh installation the tables are empty, the planner finds a sequential
 * scan cheapest for "message_id = ANY($1)", and keeps it while the table
 * grows (measured: 560 instead of 5,600 requests/s after 300k rows).
 * Every lookup here has an index, so this session forbids sequential
 * scans outright, and the statements leave the planner no join to get
 * wrong: per-row lookups are LATERAL subqueries kept from being pulled up
 * (OFFSET 0), so each is an index probe.  (force_custom_plan was measured
 * too: planning every execution cost a third of the throughput.)
 *
 * The plans are also forced generic.  Left to choose (plan_cache_mode
 * auto), PostgreSQL replans the array statements at every execution for
 * small groups, whose custom plan looks cheaper than the generic one
 * (which assumes 10 array elements): measured at one client, planning
 * was 42% of the committer's backend, ~480 us of server CPU per group.
 * A generic plan made on empty tables must then still probe by key: the
 * session turns off hash and merge joins (every join here is a
 * nested-loop probe of a few rows) and index-only scans (which made the
 * suppression probe walk all of suppressions_reason_idx, whose second
 * column is the address, instead of probing the primary key).  The
 * plans on an empty database are checked by a test (tests/db/test_committer.c,
 * generic_plans_on_an_empty_database_probe_by_key).  The session also
 * defers its queue NOTIFY (see db_group_send).
 */
/* The committer session's settings (see above), in one round trip. */
static const char session_settings[] =
	"SET mailferry.defer_notify = on; SET enable_seqscan = off; SET enable_hashjoin = off;"
	" SET enable_mergejoin = off; SET enable_indexonlyscan = off; SET plan_cache_mode = force_generic_plan";

int db_messages_prepare(void *conn, char *err, size_t errlen)
{
	PGconn *c = conn;
	if (prepare(c, "mf_accept", sql_accept, err, errlen) < 0 ||
	    prepare(c, "mf_accept_keyed", sql_accept_keyed, err, errlen) < 0 ||
	    prepare(c, "mf_claim", sql_claim, err, errlen) < 0 || prepare(c, "mf_losers", sql_losers, err, errlen) < 0 ||
	    prepare(c, "mf_wake", "SELECT pg_notify('mailferry_queue', '')", err, errlen) < 0 ||
	    db_exec(c, session_settings, err, errlen) < 0)
		return -1;
	for (int i = 0; i < 2 * MSG_CHUNK_MAX; i++) {
		int rows = i % MSG_CHUNK_MAX + 1, keyed = i >= MSG_CHUNK_MAX;
		struct buf sql;
		char name[32];
		buf_init(&sql, MF_DB_STATEMENT_MAX);
		messages_sql(&sql, rows, keyed);
		snprintf(name, sizeof(name), "mf_msgs_%s%d", keyed ? "k" : "", rows);
		int rc = prepare(c, name, buf_cstr(&sql), err, errlen);
		buf_cleanup(&sql);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* A message with the unit it belongs to; the statuses the statements
 * return for it go to m->accepted. */
struct flat {
	struct db_write *u;
	struct db_msg_row *m;
};

/*
 * A group's statements go out in libpq pipeline mode (PostgreSQL 14+):
 * all of them, and the Sync that commits them, are sent before any result
 * is read, so a whole group costs one round trip to the server.
 * PQsendQueryParams copies the parameters into libpq's output buffer, so
 * they may be freed right after each send.
 */
struct pipe {
	PGconn *c;
	int n, cap;
	ExecStatusType *want;
	/* Indexes of the statements whose rows are read (-1: none). */
	int accept_at;
	int losers_at;       /* sql_losers, whose result is kept in losers */
	int wake_at;         /* the wake-up after the commit, whose failure is ignored */
	char created_at[DB_TS_LEN]; /* from accept_at */
	PGresult *losers;
};

/* Sends a prepared statement (name) or, with name NULL, the text sql. */
static int pipe_send(struct pipe *p, const char *name, const char *sql, int n, const char *const *v,
		     const int *lens, const int *fmts, ExecStatusType want, char *err, size_t errlen)
{
	int sent = name ? PQsendQueryPrepared(p->c, name, n, v, lens, fmts, 0)
			: PQsendQueryParams(p->c, sql, n, NULL, v, lens, fmts, 0);
	if (!sent) {
		db_set_error(p->c, NULL, err, errlen);
		return -1;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 16;
		p->want = xrealloc(p->want, (size_t)p->cap * sizeof(*p->want));
	}
	p->want[p->n++] = want;
	return 0;
}

/* The keyed units' arrays (api key ids, keys, request hashes, message
 * ids), for sql_claim, sql_losers and the keyed statements; a unit with a
 * key is a single message (api/messages.c). */
struct key_arrays {
	int n;
	struct buf kid, key, hash, mid;
};

static void key_arrays_build(struct key_arrays *a, struct db_write *const *keyed, int n)
{
	struct buf *all[] = { &a->kid, &a->key, &a->hash, &a->mid };
	a->n = n;
	for (size_t i = 0; i < 4; i++)
		array_start(all[i]);
	for (int i = 0; i < n; i++) {
		char hx[2 * DB_IDEM_HASH_LEN + 1];
		hex_encode(keyed[i]->idem_hash, DB_IDEM_HASH_LEN, hx);
		array_add_int(&a->kid, keyed[i]->api_key_id);
		array_add(&a->key, keyed[i]->idem_key);
		array_add(&a->hash, hx);
		array_add(&a->mid, keyed[i]->msgs[0].id);
	}
	for (size_t i = 0; i < 4; i++)
		array_end(all[i]);
}

static void key_arrays_cleanup(struct key_arrays *a)
{
	buf_cleanup(&a->kid);
	buf_cleanup(&a->key);
	buf_cleanup(&a->hash);
	buf_cleanup(&a->mid);
}

/* The message rows, in chunks of up to MSG_CHUNK_MAX; with keys (ka not
 * NULL), the keyed variant, which leaves out the units that lost. */
static int send_messages(struct pipe *pp, const struct flat *f, int n, const struct key_arrays *ka, char *err,
			 size_t errlen)
{
	int rc = 0;
	for (int base = 0; base < n && rc == 0;) {
		int rows = n - base < MSG_CHUNK_MAX ? n - base : MSG_CHUNK_MAX;
		int np = rows * MSG_COLS + (ka ? 3 : 0);
		const char **v = xcalloc((size_t)np, sizeof(char *));
		int *lens = xcalloc((size_t)np, sizeof(int));
		int *fmts = xcalloc((size_t)np, sizeof(int));
		if (ka) {
			v[np - 3] = ka->mid.data;
			v[np - 2] = ka->kid.data;
			v[np - 1] = ka->key.data;
		}
		char (*nums)[2][24] = xcalloc((size_t)rows, sizeof(*nums));
		struct buf *tags = xcalloc((size_t)rows, sizeof(struct buf));
		for (int r = 0; r < rows; r++) {
			const struct db_msg_row *x = f[base + r].m;
			int k = r * MSG_COLS;
			array_start(&tags[r]);
			for (int t = 0; t < x->ntags; t++)
				array_add(&tags[r], x->tags[t]);
			array_end(&tags[r]);
			snprintf(nums[r][0], 24, "%" PRId64, f[base + r].u->api_key_id);
			snprintf(nums[r][1], 24, "%zu", x->body_len);
			v[k + 0] = x->id;
			v[k + 1] = f[base + r].u->api_key_id ? nums[r][0] : NULL;
			v[k + 2] = x->send_at;
			v[k + 3] = x->mail_from;
			v[k + 4] = x->from_header;
			v[k + 5] = x->subject;
			v[k + 6] = x->message_id_hdr;
			v[k + 7] = tags[r].data;
			v[k + 8] = x->metadata_json ? x->metadata_json : "{}";
			v[k + 9] = nums[r][1];
			v[k + 10] = x->body;
			lens[k + 10] = (int)x->body_len;
			fmts[k + 10] = 1; /* binary bytea: the body needs no escaping */
			v[k + 11] = x->request_json;
			v[k + 12] = x->source ? x->source : "api";
		}
		char name[32];
		snprintf(name, sizeof(name), "mf_msgs_%s%d", ka ? "k" : "", rows);
		rc = pipe_send(pp, name, NULL, np, v, lens, fmts, PGRES_COMMAND_OK, err, errlen);
		free(v);
		free(lens);
		free(fmts);
		free(nums);
		for (int r = 0; r < rows; r++)
			buf_cleanup(&tags[r]);
		free(tags);
		base += rows;
	}
	return rc;
}

/* Recipients, their events and the message statuses (sql_accept, or with
 * keys sql_accept_keyed). */
static int send_rest(struct pipe *pp, const struct flat *f, int n, const struct key_arrays *ka, char *err,
		     size_t errlen)
{
	struct buf mid, pos, email, domain, kind, sendat;
	struct buf *all[] = { &mid, &pos, &email, &domain, &kind, &sendat };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		array_start(all[i]);
	for (int i = 0; i < n; i++) {
		const struct db_msg_row *x = f[i].m;
		for (int r = 0; r < x->nrcpts; r++) {
			array_add(&mid, x->id);
			array_add_int(&pos, r);
			array_add(&email, x->rcpts[r].email);
			array_add(&domain, x->rcpts[r].domain);
			array_add(&kind, x->rcpts[r].kind);
			array_add_or_null(&sendat, x->send_at);
		}
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		array_end(all[i]);

	int rc = -1;
	const char *p[] = { mid.data, pos.data, email.data, domain.data, kind.data, sendat.data,
			    ka ? ka->mid.data : NULL, ka ? ka->kid.data : NULL, ka ? ka->key.data : NULL };
	pp->accept_at = pp->n;
	if (pipe_send(pp, ka ? "mf_accept_keyed" : "mf_accept", NULL, ka ? 9 : 6, p, NULL, NULL, PGRES_TUPLES_OK, err,
		      errlen) < 0)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		buf_cleanup(all[i]);
	return rc;
}

/* The message of f with this id; rows come back in the order of f, so
 * the search starting at *hint mostly stops at its first probe. */
static struct flat *find_flat(struct flat *f, int n, const char *id, int *hint)
{
	for (int i = 0; i < n; i++) {
		int k = (*hint + i) % n;
		if (strcmp(f[k].m->id, id) == 0) {
			*hint = k;
			return &f[k];
		}
	}
	return NULL;
}

/* Keeps one status row of mf_accept: kind 'm' (a message's), or 'r' (a
 * recipient's, by position). */
static void take_status(struct db_accepted *a, int nrcpts, char kind, const char *pos_s, const char *status)
{
	if (kind == 'm') {
		free(a->status);
		a->status = xstrdup(status);
		return;
	}
	long pos = strtol(pos_s, NULL, 10);
	if (pos < 0 || pos >= nrcpts)
		return;
	if (a->rstatus == NULL)
		a->rstatus = xcalloc((size_t)nrcpts, sizeof(char *));
	free(a->rstatus[pos]);
	a->rstatus[pos] = xstrdup(status);
}

/* Reads the rows of mf_accept (see sql_accept). */
static void take_result(struct pipe *pp, int i, PGresult *res, struct flat *f, int nf)
{
	if (i != pp->accept_at)
		return;
	int hint = 0;
	for (int r = 0; r < PQntuples(res); r++) {
		char kind = PQgetvalue(res, r, 0)[0];
		if (kind == 't') {
			snprintf(pp->created_at, sizeof(pp->created_at), "%s", PQgetvalue(res, r, 3));
			continue;
		}
		struct flat *x = find_flat(f, nf, PQgetvalue(res, r, 1), &hint);
		if (x == NULL)
			continue;
		take_status(&x->m->accepted, x->m->nrcpts, kind, PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
	}
}

void db_accepted_cleanup(struct db_accepted *a, int nrcpts)
{
	free(a->status);
	for (int r = 0; a->rstatus && r < nrcpts; r++)
		free(a->rstatus[r]);
	free(a->rstatus);
	*a = (struct db_accepted){ 0 };
}

void db_write_cleanup(struct db_write *w)
{
	for (int i = 0; i < w->nmsgs; i++)
		db_accepted_cleanup(&w->msgs[i].accepted, w->msgs[i].nrcpts);
	db_accepted_cleanup(&w->replay, w->nmsgs > 0 ? w->msgs[0].nrcpts : 0);
	free(w->replay_stored);
	w->replay_stored = NULL;
	w->replay_id[0] = '\0';
}

/* Reads every result of the pipeline; 0 when each statement succeeded. */
static int pipe_finish(struct pipe *pp, struct flat *f, int nf, char *err, size_t errlen)
{
	int rc = 0;
	for (int i = 0; i < pp->n; i++) {
		PGresult *res = PQgetResult(pp->c);
		if (res == NULL) {
			db_set_error(pp->c, NULL, err, errlen);
			return -1;
		}
		if (i == pp->wake_at) {
			/* After the commit: the group is written whatever happens here. */
			if (PQresultStatus(res) != pp->want[i])
				log_warn_limited("event=queue_wake_failed error=\"%s\"", PQresultErrorMessage(res));
		} else if (PQresultStatus(res) != pp->want[i]) {
			if (rc == 0 && PQresultStatus(res) != PGRES_PIPELINE_ABORTED)
				db_set_error(pp->c, res, err, errlen);
			rc = -1;
		} else if (i == pp->losers_at) {
			pp->losers = res;
			res = NULL;
		} else {
			take_result(pp, i, res, f, nf);
		}
		PQclear(res);
		/* Each statement's results end with a NULL. */
		while ((res = PQgetResult(pp->c)) != NULL)
			PQclear(res);
	}
	PGresult *sync = PQgetResult(pp->c);
	if (sync == NULL || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
		if (rc == 0)
			db_set_error(pp->c, sync, err, errlen);
		rc = -1;
	}
	PQclear(sync);
	return rc;
}

/* Marks every unit OK and clears earlier results. */
static void units_reset(struct db_write **w, int n)
{
	for (int i = 0; i < n; i++) {
		w[i]->status = DB_WRITE_OK;
		db_write_cleanup(w[i]);
	}
}

/* The messages of the units still to be written, in order (*nm of them). */
static struct flat *units_flatten(struct db_write **w, int n, int *nm)
{
	int total = 0;
	for (int i = 0; i < n; i++)
		if (w[i]->status == DB_WRITE_OK)
			total += w[i]->nmsgs;
	struct flat *f = xcalloc((size_t)total + 1, sizeof(*f));
	int k = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; w[i]->status == DB_WRITE_OK && j < w[i]->nmsgs; j++)
			f[k++] = (struct flat){ .u = w[i], .m = &w[i]->msgs[j] };
	*nm = total;
	return f;
}

/*
 * Pipelined groups (db_group_send / db_group_finish).  A group needs no
 * answer from the server before its statements are sent (its
 * Idempotency-Keys are decided inside them, see sql_claim), so the
 * committer sends the next group while the previous one commits: the
 * server starts on it as soon as the fsync returns instead of waiting for
 * the committer to read the results, answer the requests and build the
 * next statements (measured: docs/benchmarks.md).  Each group is an
 * implicit transaction - its statements up to a Sync, which commits them
 * or, after an error, rolls them back without touching the groups around
 * it - followed by the schedulers' wake-up in a transaction of its own:
 * NOTIFY holds a database-wide lock from pre-commit until the commit is
 * flushed, so issued inside the group (by the recipients trigger) it
 * serialised every commit; this session turns the trigger off
 * (mailferry.defer_notify) and notifies here, where the lock lasts
 * microseconds and no fsync.
 */
struct db_group {
	struct flat *f;
	int nm;
	struct db_write **keyed; /* the units with an Idempotency-Key, in claim order */
	int nkeyed;
	struct pipe rows;        /* the group's statements, committed at their Sync */
	struct pipe wake;        /* the wake-up, whose failure is only logged */
};

/* [claim], messages, accept, [losers]: see sql_claim. */
static int send_group(struct db_group *g, char *err, size_t errlen)
{
	if (g->nkeyed == 0) {
		int rc = send_messages(&g->rows, g->f, g->nm, NULL, err, errlen);
		return rc == 0 ? send_rest(&g->rows, g->f, g->nm, NULL, err, errlen) : rc;
	}
	struct key_arrays ka;
	key_arrays_build(&ka, g->keyed, g->nkeyed);
	const char *claim[] = { ka.kid.data, ka.key.data, ka.hash.data, ka.mid.data };
	int rc = pipe_send(&g->rows, "mf_claim", NULL, 4, claim, NULL, NULL, PGRES_COMMAND_OK, err, errlen);
	if (rc == 0)
		rc = send_messages(&g->rows, g->f, g->nm, &ka, err, errlen);
	if (rc == 0)
		rc = send_rest(&g->rows, g->f, g->nm, &ka, err, errlen);
	if (rc == 0) {
		g->rows.losers_at = g->rows.n;
		rc = pipe_send(&g->rows, "mf_losers", NULL, 4, claim, NULL, NULL, PGRES_TUPLES_OK, err, errlen);
	}
	key_arrays_cleanup(&ka);
	return rc;
}

struct db_group *db_group_send(void *conn, struct db_write **w, int n, char *err, size_t errlen)
{
	PGconn *c = conn;
	units_reset(w, n);
	struct db_group *g = xcalloc(1, sizeof(*g));
	g->f = units_flatten(w, n, &g->nm);
	g->keyed = xcalloc((size_t)n + 1, sizeof(*g->keyed));
	for (int i = 0; i < n; i++)
		if (w[i]->idem_key != NULL && w[i]->nmsgs == 1)
			g->keyed[g->nkeyed++] = w[i];
	g->rows = (struct pipe){ .c = c, .accept_at = -1, .losers_at = -1, .wake_at = -1 };
	g->wake = (struct pipe){ .c = c, .accept_at = -1, .losers_at = -1, .wake_at = 0 };
	int rc = PQpipelineStatus(c) != PQ_PIPELINE_OFF || PQenterPipelineMode(c) ? 0 : -1;
	if (rc < 0)
		db_set_error(c, NULL, err, errlen);
	if (rc == 0 && g->nm > 0)
		rc = send_group(g, err, errlen);
	if (rc == 0 && !PQpipelineSync(c)) {
		db_set_error(c, NULL, err, errlen);
		rc = -1;
	}
	if (rc == 0 && g->nm > 0) {
		rc = pipe_send(&g->wake, "mf_wake", NULL, 0, NULL, NULL, NULL, PGRES_TUPLES_OK, err, errlen);
		if (rc == 0 && !PQpipelineSync(c)) {
			db_set_error(c, NULL, err, errlen);
			rc = -1;
		}
	}
	if (rc < 0) {
		/* Part of the group may be on its way: the connection's state
		 * is unknown, and the caller drops it. */
		db_group_free(g);
		return NULL;
	}
	return g;
}

/* What a replaying unit gets, from sql_losers' row r: the stored answer,
 * or the original message at accept (see sql_claim); -1 when neither can
 * be had (the message, or an accept event, is gone). */
static int take_replay(PGresult *res, int r, struct db_write *u)
{
	if (PQgetvalue(res, r, 3)[0] != '\0') {
		u->replay_stored = xstrdup(PQgetvalue(res, r, 3));
		return 0;
	}
	if (PQgetisnull(res, r, 5) || PQgetvalue(res, r, 8)[0] != 't')
		return -1;
	int nrcpts = u->msgs[0].nrcpts;
	struct db_accepted *a = &u->replay;
	snprintf(u->replay_id, sizeof(u->replay_id), "%s", PQgetvalue(res, r, 4));
	snprintf(a->created_at, sizeof(a->created_at), "%s", PQgetvalue(res, r, 5));
	a->status = xstrdup(PQgetvalue(res, r, 6));
	a->rstatus = xcalloc((size_t)nrcpts + 1, sizeof(char *));
	/* The recipients' statuses, comma-separated in position order. */
	const char *p = PQgetvalue(res, r, 7);
	for (int k = 0; *p && k < nrcpts; k++) {
		size_t len = strcspn(p, ",");
		a->rstatus[k] = xstrndup(p, len);
		p += len + (p[len] == ',');
	}
	return 0;
}

/* sql_losers' rows: each unit that lost its key is a replay, a conflict,
 * or in flight (no status could be read with the key: 409, retry).
 * Its rows were not written. */
static void take_losers(struct db_group *g, PGresult *res)
{
	for (int r = 0; res && r < PQntuples(res); r++) {
		long ord = strtol(PQgetvalue(res, r, 0), NULL, 10);
		if (ord < 1 || ord > g->nkeyed)
			continue;
		struct db_write *u = g->keyed[ord - 1];
		int code = (int)strtol(PQgetvalue(res, r, 2), NULL, 10);
		if (code == 0) {
			u->status = DB_WRITE_IDEM_IN_FLIGHT;
		} else if (PQgetvalue(res, r, 1)[0] != 't') {
			u->status = DB_WRITE_IDEM_CONFLICT;
		} else {
			if (take_replay(res, r, u) < 0) {
				/* Retention shorter than the key's 24 hours took the
				 * message or its accept events: the answer cannot be
				 * given again, and a new message would be a duplicate:
				 * 409 until the key expires. */
				u->status = DB_WRITE_IDEM_GONE;
			} else {
				u->status = DB_WRITE_REPLAY;
			}
		}
		db_accepted_cleanup(&u->msgs[0].accepted, u->msgs[0].nrcpts);
	}
}

int db_group_finish(struct db_group *g, char *err, size_t errlen)
{
	int rc = pipe_finish(&g->rows, g->f, g->nm, err, errlen);
	if (rc == 0)
		take_losers(g, g->rows.losers);
	for (int i = 0; rc == 0 && i < g->nm; i++)
		if (g->f[i].u->status == DB_WRITE_OK)
			memcpy(g->f[i].m->accepted.created_at, g->rows.created_at, sizeof(g->rows.created_at));
	if (g->wake.n > 0) {
		char werr[256]; /* a failed wake-up is logged by pipe_finish */
		(void)pipe_finish(&g->wake, NULL, 0, werr, sizeof(werr));
	}
	if (rc < 0 && PQstatus(g->rows.c) != CONNECTION_OK)
		rc = -2;
	return rc;
}

void db_group_free(struct db_group *g)
{
	if (g == NULL)
		return;
	free(g->rows.want);
	free(g->wake.want);
	PQclear(g->rows.losers);
	free(g->f);
	free(g->keyed);
	free(g);
}
