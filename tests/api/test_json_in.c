/*
 * Tests of api/json_in.c: for every well-formed UTF-8 body, json_in_parse
 * gives what json_loadb(..., JSON_REJECT_DUPLICATES) gives - the same
 * value with the same key order, or the same error at the same place.
 * Checked on each construct that cJSON reads more leniently than jansson,
 * and on 200,000 random mutations of real requests.  The fast path itself
 * must take plain send and batch requests.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_in.h"
#include "api/validate.h"

/* 1 when json_in_parse agrees with json_loadb on s[0..n-1] (or s is not
 * UTF-8, which callers refuse before parsing). */
static int same_as_jansson(const char *s, size_t n)
{
	struct json_problem p;
	json_t *a = validate_parse_json(s, n, &p);
	if (p.not_utf8)
		return 1;
	json_error_t je;
	json_t *b = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	int same;
	if (a == NULL || b == NULL) {
		same = a == NULL && b == NULL && p.position == (long)je.position && p.line == je.line &&
		       p.column == je.column;
	} else {
		char *da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
		char *db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
		same = da && db && strcmp(da, db) == 0 && json_equal(a, b);
		free(da);
		free(db);
	}
	json_decref(a);
	json_decref(b);
	return same;
}

#define SAME(lit) cr_assert(same_as_jansson(lit, sizeof(lit) - 1), "differs from jansson: %s", lit)

Test(json_in, lenient_constructs_are_left_to_jansson)
{
	SAME("{\"a\":01}");           /* leading zero */
	SAME("{\"a\":1.}");           /* no digit after the point */
	SAME("{\"a\":1e}");
	SAME("{\"a\":-}");
	SAME("{\"a\":12345678901234567890123}");
	SAME("{\"a\":1.5,\"b\":2}");  /* numbers: jansson's integer/real */
	SAME("{\"a\":\"x\ty\"}");      /* raw tab inside a string */
	SAME("{\"a\":\"x\ny\"}");
	SAME("{\"a\":\"x\x01y\"}");
	SAME("{\"a\":\x0b\"x\"}");     /* vertical tab as whitespace */
	SAME("{\"a\":\"\\u0000\"}");   /* NUL escape */
	SAME("{\"a\\u0000\":\"x\"}");
	SAME("{\"a\":\"\\\\u0000\"}"); /* an escaped backslash, then text */
	SAME("{\"a\":1,\"a\":2}");
	SAME("{\"a\":\"x\",\"a\":\"y\"}"); /* duplicate key */
	SAME("{\"a\":\"x\",\"\\u0061\":\"y\"}");
	SAME("\xef\xbb\xbf{\"a\":\"x\"}"); /* byte order mark */
	SAME("\"just a string\"");
	SAME("true");
	SAME("null");
	SAME("{\"a\":\"x\"} trailing");
	SAME("{\"a\":\"x\"} \n");
	SAME("{\"a\":\"x\"}{}");
	SAME("[1,]");
	SAME("{,}");
	SAME("{\"a\" \"x\"}");
	SAME("{\"a\":\"\\q\"}");         /* unknown escape */
	SAME("{\"a\":\"\\uodd x\"}");    /* \u without four hex digits */
	SAME("{\"a\":\"\\u12\"}");
	SAME("{\"a\":\"\\u12");
	SAME("{\"a\":\"\\ud800\"}");     /* lone surrogates */
	SAME("{\"a\":\"\\udc00\"}");
	SAME("{\"a\":\"\\ud83d\\ude00\"}");
	SAME("{\"a\":\"\\u00e9\\u20AC\"}");
	SAME("{\"a\":TRUE}");
	SAME("{\"a\":tru}");
	SAME("");
	SAME("   ");
	SAME("{\"a\":\"unterminated");
	SAME("{\"a\":[\"x\",{\"b\":null,\"c\":[true,false]}],\"d\":{}}");
	char nul[] = "{\"a\":\"x\"}\0{}";
	cr_assert(same_as_jansson(nul, sizeof(nul) - 1));
	/* Nesting past cJSON's limit (1000) but within jansson's (2048). */
	static char deep[2 * 1500 + 1];
	memset(deep, '[', 1500);
	memset(deep + 1500, ']', 1500);
	cr_assert(same_as_jansson(deep, 3000));
	static char deeper[2 * 3000 + 1];
	memset(deeper, '[', 3000);
	memset(deeper + 3000, ']', 3000);
	cr_assert(same_as_jansson(deeper, 6000));
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	static char buf[1 << 16];
	*n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	char *s = malloc(*n + 1);
	memcpy(s, buf, *n);
	s[*n] = '\0';
	return s;
}

Test(json_in, plain_requests_take_the_fast_path)
{
	size_t n;
	char *s = slurp("tests/data/api/send_full.json", &n);
	json_t *v = json_in_fast(s, n);
	cr_assert_not_null(v, "a full send request was left to jansson");
	json_error_t je;
	json_t *w = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	cr_assert(json_equal(v, w));
	json_decref(v);
	json_decref(w);
	free(s);
	const char batch[] = "{\"messages\":[{\"from\":\"a@b.example\",\"to\":[\"c@d.example\"],\"subject\":\"\\u00e9t\\u00e9\","
			     "\"text\":\"line 1\\nline 2\\t\\\"quoted\\\"\",\"metadata\":{\"order\":\"1\"}}]}\n";
	v = json_in_fast(batch, sizeof(batch) - 1);
	cr_assert_not_null(v);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(v, "messages"), 0), "subject")),
			 "\xc3\xa9t\xc3\xa9");
	json_decref(v);
}

Test(json_in, random_mutations_agree_with_jansson)
{
	size_t n;
	char *seed = slurp("tests/data/api/send_full.json", &n);
	static const char alphabet[] = "\"\\{}[],:0123456789-+.eEtrufalsnu \t\n\r\x01\x0b\xef\xbb\xbf\xc3\xa9";
	static char buf[1 << 17];
	srand(12345);
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = n;
		memcpy(buf, seed, n);
		int edits = 1 + rand() % 4;
		for (int e = 0; e < edits && len + 8 < sizeof(buf); e++) {
			size_t at = len ? (size_t)rand() % len : 0;
			char c = alphabet[rand() % (sizeof(alphabet) - 1)];
			switch (rand() % 3) {
			case 0: /* replace */
				if (len)
					buf[at] = c;
				break;
			case 1: /* insert */
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = c;
				len++;
				break;
			default: /* delete */
				if (len) {
					memmove(buf + at, buf + at + 1, len - at - 1);
					len--;
				}
			}
		}
		cr_assert(same_as_jansson(buf, len), "iteration %d differs: %.*s", iter, (int)len, buf);
	}
	free(seed);
}
