/*
 * json_in.c - see json_in.h.
 *
 * Why two parsers: jansson's decoder reads its input one byte per
 * callback and copies every string byte by byte, so parsing was 28% of
 * the send path's CPU for a 2.2 KB message (text and HTML parts) and
 * ~20 us of each batch item (measured: 21 us for that body with
 * json_loadb, 2.2 us with cJSON plus the conversion below;
 * docs/benchmarks.md).  The validator and everything after it keep
 * working on jansson values.
 *
 * Equivalence with json_loadb(..., JSON_REJECT_DUPLICATES) (RFC 8259)
 * holds because the fast path only keeps a result when nothing in the
 * body is read differently by the two:
 *   - precheck(): no byte below 0x20 inside a string (RFC 8259 §7) and
 *     none but space, tab, LF, CR outside (§2), no NUL, no "\u0000"
 *     escape (jansson refuses it without JSON_ALLOW_NUL; cJSON would cut
 *     the string) and no "\u" without four hex digits (cJSON reads it as
 *     U+0000), no byte order mark, and nothing but whitespace after the
 *     value;
 *   - convert(): no number (cJSON accepts "01", "1." and "+"-less forms
 *     jansson refuses, and keeps no integer/real distinction; a send
 *     request has no numeric field, so this costs nothing in practice)
 *     and no duplicate key;
 *   - the top-level value is an object or an array (json_loadb refuses a
 *     scalar without JSON_DECODE_ANY).
 * Anything else - and every body cJSON refuses - goes to json_loadb, which
 * decides and reports.  tests/api/test_json_in.c and the fuzz harness
 * tests/fuzz/fuzz_json_in.c compare the two on every input.
 */
#include "api/json_in.h"

#include <cJSON.h>
#include <ctype.h>
#include <pthread.h>
#include <string.h>

#include "api/http.h"
#include "util/scan.h"

/* Serialises cJSON parses: see json_in_fast(). */
static pthread_mutex_t cjson_mu = PTHREAD_MUTEX_INITIALIZER;

/* The four hex digits of a "\\u" escape, not 0000: cJSON reads a
 * malformed escape as U+0000 and cuts the string there. */
static int unicode_escape_ok(const unsigned char *h, size_t n)
{
	if (n < 4 || memcmp(h, "0000", 4) == 0)
		return 0;
	for (int k = 0; k < 4; k++)
		if (!isxdigit(h[k]))
			return 0;
	return 1;
}

/* 0: the fast path may be used; -1: leave the body to jansson. */
static int precheck(const unsigned char *s, size_t n)
{
	if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
		return -1;
	int in_string = 0;
	for (size_t i = 0; i < n; i++) {
		/* Eight octets at once while none is a quote, a backslash or a
		 * control character: such octets change nothing here. */
		while (i + 8 <= n) {
			uint64_t w = scan_word(s + i);
			if (scan_has_byte(w, '"') | scan_has_byte(w, '\\') | scan_has_less(w, 0x20))
				break;
			i += 8;
		}
		if (i == n)
			break;
		unsigned char c = s[i];
		if (in_string) {
			if (c < 0x20)
				return -1;
			if (c == '"') {
				in_string = 0;
			} else if (c == '\\') {
				if (i + 1 < n && s[i + 1] == 'u' && !unicode_escape_ok(s + i + 2, n - i - 2))
					return -1;
				i++; /* skip the escaped byte: an escaped quote does not end the string */
			}
		} else if (c == '"') {
			in_string = 1;
		} else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return -1;
		}
	}
	return 0;
}

/* The jansson value of c, or NULL when the body is to be left to jansson
 * (a number or a duplicate key).  Depth is bounded by cJSON's nesting
 * limit (CJSON_NESTING_LIMIT, 1000). */
static json_t *convert(const cJSON *c)
{
	if (cJSON_IsString(c))
		return json_stringn_nocheck(c->valuestring, strlen(c->valuestring));
	if (cJSON_IsObject(c)) {
		json_t *o = json_object();
		for (const cJSON *k = c->child; k; k = k->next) {
			json_t *v = json_object_get(o, k->string) == NULL ? convert(k) : NULL;
			if (v == NULL || json_object_set_new_nocheck(o, k->string, v) < 0) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	if (cJSON_IsArray(c)) {
		json_t *a = json_array();
		for (const cJSON *k = c->child; k; k = k->next) {
			json_t *v = convert(k);
			if (v == NULL || json_array_append_new(a, v) < 0) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	if (cJSON_IsTrue(c))
		return json_true();
	if (cJSON_IsFalse(c))
		return json_false();
	if (cJSON_IsNull(c))
		return json_null();
	return NULL; /* a number */
}

/* Only JSON whitespace (RFC 8259 §2) from p to end. */
static int only_whitespace(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return 0;
	return 1;
}

json_t *json_in_fast(const char *body, size_t len)
{
	if (precheck((const unsigned char *)body, len) < 0)
		return NULL;
	const char *end = NULL;
	/* cJSON keeps the error position in one static variable (its
	 * README: the one part that is not thread-safe).  In 1.7.15 (Debian
	 * 12) cJSON_ParseWithLengthOpts() resets it at the start of every
	 * call and sets it on failure; return_parse_end is filled as well as
	 * the global, not instead of it, so every parse writes it, success or
	 * not.  Parses from several threads (the HTTP pool) therefore take
	 * turns: two unsynchronised writes are a data race (undefined
	 * behaviour, C17 5.1.2.4).  make test-tsan would not catch its
	 * removal: Debian's libcjson is not instrumented, so ThreadSanitizer
	 * does not see its stores.  Nothing else in cJSON needs the lock:
	 * cJSON_InitHooks() is never called, so its global hooks are only
	 * read.  (cli/cmd_send.c's cJSON_Parse() runs in a one-thread CLI.)
	 * A 2.2 KB body holds the lock ~1 us. */
	pthread_mutex_lock(&cjson_mu);
	cJSON *c = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	pthread_mutex_unlock(&cjson_mu);
	json_t *v = NULL;
	if (c != NULL && (cJSON_IsObject(c) || cJSON_IsArray(c)) && end != NULL && end >= body &&
	    end <= body + len && only_whitespace(end, body + len))
		v = convert(c);
	cJSON_Delete(c);
	return v;
}

json_t *json_in_parse(const char *body, size_t len, json_error_t *err)
{
	json_t *v = json_in_fast(body, len);
	if (v != NULL) {
		memset(err, 0, sizeof(*err));
		return v;
	}
	return json_loadb(body, len, JSON_REJECT_DUPLICATES, err);
}

json_t *json_in_body_object(struct api_req *req)
{
	json_error_t jerr;
	json_t *v = json_loadb(buf_cstr(&req->body), req->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(v)) {
		json_decref(v);
		api_problem(req, 400, "invalid_json", "the body must be a JSON object");
		return NULL;
	}
	return v;
}
