/*
 * Unit tests for the send request validator (api/validate.c): every
 * refusal, each checked for the field it names and its code; JSON body
 * parsing (UTF-8, position of a syntax error); base64; RFC 3339.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "util/limits.h"

/* Validates body (JSON text).  Returns the number of errors; e filled. */
static int run(const char *body, struct val_errors *e, struct mail_request *r)
{
	struct json_problem p;
	json_t *root = validate_parse_json(body, strlen(body), &p);
	cr_assert_not_null(root, "test JSON does not parse: %s (%s)", p.detail, body);
	val_errors_init(e);
	int rc = validate_send(root, r, e);
	json_decref(root);
	cr_assert_eq(rc == 0, e->n == 0, "return code and error list disagree");
	return e->n;
}

/* Asserts that body is refused with (field, code) among its errors. */
static void refused(const char *body, const char *field, const char *code)
{
	struct val_errors e;
	struct mail_request r;
	int n = run(body, &e, &r);
	cr_assert_gt(n, 0, "accepted but expected %s/%s: %s", field, code, body);
	int found = 0;
	for (int i = 0; i < e.n; i++)
		found |= strcmp(e.v[i].field, field) == 0 && strcmp(e.v[i].code, code) == 0;
	char all[2048] = "";
	for (int i = 0; i < e.n; i++) {
		size_t l = strlen(all);
		snprintf(all + l, sizeof(all) - l, "[%s %s %s] ", e.v[i].field, e.v[i].code, e.v[i].message);
	}
	cr_assert(found, "expected field=%s code=%s, got %s for %s", field, code, all, body);
	val_errors_cleanup(&e);
}

static void accepted(const char *body, struct mail_request *r)
{
	struct val_errors e;
	int n = run(body, &e, r);
	cr_assert_eq(n, 0, "refused: %s %s %s (%s)", n ? e.v[0].field : "", n ? e.v[0].code : "",
		     n ? e.v[0].message : "", body);
	val_errors_cleanup(&e);
}

#define BASE "\"from\":\"Shop <orders@shop.example>\",\"to\":\"a@example.net\",\"text\":\"hi\""

Test(validate, accepts_full_request)
{
	struct mail_request r;
	accepted("{\"from\":\"\\\"Shop, Inc.\\\" <orders@shop.example>\",\"to\":[\"a@example.net\",\"B <b@Example.ORG>\"],"
		 "\"cc\":\"c@example.net\",\"bcc\":[\"\\\"odd local\\\"@example.net\"],\"reply_to\":\"help@shop.example\","
		 "\"subject\":\"Grüße\",\"text\":\"t\",\"html\":\"<p>h</p>\",\"headers\":{\"X-Order\":\"42\",\"List-Unsubscribe\":\"<mailto:u@shop.example>\"},"
		 "\"attachments\":[{\"filename\":\"a.txt\",\"content\":\"aGVsbG8=\",\"content_type\":\"text/plain\"},"
		 "{\"filename\":\"logo.png\",\"content\":\"iVBORw0KGgo=\",\"content_type\":\"image/png\",\"content_id\":\"logo\"}],"
		 "\"tags\":[\"order\",\"eu\"],\"metadata\":{\"order\":\"42\"},\"send_at\":\"2030-01-02T03:04:05.123+01:00\"}",
		 &r);
	cr_assert_str_eq(r.from.name, "Shop, Inc.");
	cr_assert_str_eq(r.from.addr, "orders@shop.example");
	cr_assert_eq(r.nrcpts, 4);
	cr_assert_eq(r.rcpts[2].kind, RCPT_CC);
	cr_assert_eq(r.rcpts[3].kind, RCPT_BCC);
	cr_assert_str_eq(r.rcpts[3].a.addr, "\"odd local\"@example.net");
	cr_assert_str_eq(r.rcpts[1].a.name, "B");
	cr_assert_eq(r.nreply_to, 1);
	cr_assert_eq(r.nheaders, 2);
	cr_assert_eq(r.natts, 2);
	cr_assert_eq(r.atts[0].len, 5);
	cr_assert(memcmp(r.atts[0].data, "hello", 5) == 0);
	cr_assert_str_eq(r.atts[1].content_id, "logo");
	cr_assert_eq(r.ntags, 2);
	cr_assert_eq(r.nmetadata, 1);
	cr_assert_eq(r.send_at, 1893549845); /* 2030-01-02T02:04:05Z */
	mail_request_cleanup(&r);
}

Test(validate, missing_fields)
{
	refused("{\"to\":\"a@example.net\",\"text\":\"x\"}", "from", "required");
	refused("{\"from\":\"a@example.net\",\"text\":\"x\"}", "to", "required");
	refused("{\"from\":\"a@example.net\",\"to\":\"b@example.net\"}", "text", "required");
	refused("{\"from\":\"a@example.net\",\"to\":\"b@example.net\",\"text\":\"\",\"html\":\"\"}", "text", "required");
	refused("[1,2]", "", "invalid_type");
	refused("{" BASE ",\"form\":\"x\"}", "form", "unknown_field");
}

Test(validate, wrong_types)
{
	refused("{\"from\":5,\"to\":\"a@example.net\",\"text\":\"x\"}", "from", "invalid_type");
	refused("{\"from\":\"a@example.net\",\"to\":{},\"text\":\"x\"}", "to", "invalid_type");
	refused("{\"from\":\"a@example.net\",\"to\":[\"b@example.net\",7],\"text\":\"x\"}", "to[1]", "invalid_type");
	refused("{" BASE ",\"subject\":[]}", "subject", "invalid_type");
	refused("{\"from\":\"a@example.net\",\"to\":\"b@example.net\",\"html\":true}", "html", "invalid_type");
	refused("{" BASE ",\"headers\":[]}", "headers", "invalid_type");
	refused("{" BASE ",\"headers\":{\"X-A\":1}}", "headers.X-A", "invalid_type");
	refused("{" BASE ",\"tags\":\"a\"}", "tags", "invalid_type");
	refused("{" BASE ",\"tags\":[\"a\",2]}", "tags[1]", "invalid_type");
	refused("{" BASE ",\"metadata\":[]}", "metadata", "invalid_type");
	refused("{" BASE ",\"metadata\":{\"n\":1}}", "metadata.n", "invalid_type");
	refused("{" BASE ",\"attachments\":{}}", "attachments", "invalid_type");
	refused("{" BASE ",\"attachments\":[\"x\"]}", "attachments[0]", "invalid_type");
	refused("{" BASE ",\"send_at\":5}", "send_at", "invalid_type");
}

Test(validate, bad_addresses_name_their_index)
{
	refused("{\"from\":\"a@example.net\",\"to\":[\"b@example.net\",\"x@y.example\",\"nope\"],\"text\":\"x\"}", "to[2]",
		"invalid_address");
	refused("{\"from\":\"a@example.net\",\"to\":\"b@example.net\",\"cc\":[\"a..b@example.net\"],\"text\":\"x\"}",
		"cc[0]", "invalid_address");
	refused("{\"from\":\"a@example.net\",\"to\":\"b@example.net\",\"bcc\":\"b@-bad.example\",\"text\":\"x\"}", "bcc",
		"invalid_address");
	refused("{\"from\":\"a@localhost\",\"to\":\"b@example.net\",\"text\":\"x\"}", "from", "invalid_address");
	refused("{" BASE ",\"reply_to\":[\"ok@example.net\",\"bad@\"]}", "reply_to[1]", "invalid_address");
	refused("{\"from\":\"Bad, Name <a@example.net>\",\"to\":\"b@example.net\",\"text\":\"x\"}", "from",
		"invalid_address");
}

Test(validate, recipient_limit)
{
	char body[8192];
	size_t o = (size_t)snprintf(body, sizeof(body), "{\"from\":\"a@example.net\",\"text\":\"x\",\"to\":[");
	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"r%d@example.net\"", i ? "," : "", i);
	o += (size_t)snprintf(body + o, sizeof(body) - o, "],\"cc\":[");
	for (int i = 0; i < 10; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"c%d@example.net\"", i ? "," : "", i);
	snprintf(body + o, sizeof(body) - o, "]}");
	struct mail_request r;
	accepted(body, &r); /* exactly 50 */
	cr_assert_eq(r.nrcpts, MF_RECIPIENTS_MAX);
	mail_request_cleanup(&r);
	char more[8300];
	snprintf(more, sizeof(more), "%.*s,\"bcc\":\"z@example.net\"}", (int)strlen(body) - 1, body);
	refused(more, "to", "too_many");
}

Test(validate, header_injection_everywhere)
{
	refused("{\"from\":\"a@example.net\",\"to\":\"b@example.net\\r\\nBcc: victim@example.org\",\"text\":\"x\"}", "to",
		"header_injection");
	refused("{\"from\":\"Evil\\nBcc: v@example.org <a@example.net>\",\"to\":\"b@example.net\",\"text\":\"x\"}", "from",
		"header_injection");
	refused("{" BASE ",\"subject\":\"hi\\r\\nBcc: v@example.org\"}", "subject", "header_injection");
	refused("{" BASE ",\"subject\":\"hi\\nthere\"}", "subject", "header_injection");
	refused("{" BASE ",\"headers\":{\"X-A\":\"v\\r\\nBcc: v@example.org\"}}", "headers.X-A", "header_injection");
	refused("{" BASE ",\"headers\":{\"X-A\\r\\nBcc\":\"v\"}}", "headers.X-A\r\nBcc", "header_injection");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a\\r\\n.txt\",\"content\":\"\"}]}", "attachments[0].filename",
		"header_injection");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a.txt\",\"content\":\"\",\"content_type\":\"text/plain\\r\\nX: y\"}]}",
		"attachments[0].content_type", "header_injection");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a.txt\",\"content\":\"\",\"content_id\":\"a\\nb\"}]}",
		"attachments[0].content_id", "header_injection");
	refused("{" BASE ",\"reply_to\":\"r@example.net\\r\\n\"}", "reply_to", "header_injection");
	refused("{" BASE ",\"tags\":[\"a\\nb\"]}", "tags[0]", "header_injection");
	refused("{" BASE ",\"subject\":\"bell\\u0007\"}", "subject", "invalid_character");
}

Test(validate, structural_headers_refused)
{
	static const char *names[] = { "From", "to", "CC", "Bcc", "Date", "Message-ID", "MIME-Version", "Content-Type",
				       "Content-Transfer-Encoding", "DKIM-Signature", "Return-Path", "Received", "Sender",
				       "Reply-To", "Subject", "Resent-From", "ARC-Seal" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char body[512], field[128];
		snprintf(body, sizeof(body), "{" BASE ",\"headers\":{\"%s\":\"x\"}}", names[i]);
		snprintf(field, sizeof(field), "headers.%s", names[i]);
		refused(body, field, "forbidden_header");
	}
}

Test(validate, header_names_follow_ftext)
{
	refused("{" BASE ",\"headers\":{\"X A\":\"v\"}}", "headers.X A", "invalid_header_name");
	refused("{" BASE ",\"headers\":{\"X:A\":\"v\"}}", "headers.X:A", "invalid_header_name");
	refused("{" BASE ",\"headers\":{\"\":\"v\"}}", "headers.", "invalid_header_name");
	refused("{" BASE ",\"headers\":{\"X-Ünï\":\"v\"}}", "headers.X-Ünï", "invalid_header_name");
	struct mail_request r;
	accepted("{" BASE ",\"headers\":{\"X-Weird_!#$%&'*+-.^`|~Name\":\"v\"}}", &r);
	cr_assert_eq(r.nheaders, 1);
	mail_request_cleanup(&r);
}

Test(validate, attachments)
{
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a.txt\",\"content\":\"not base64!\"}]}", "attachments[0].content",
		"invalid_base64");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a.txt\",\"content\":\"aGVsbG8\"}]}", "attachments[0].content",
		"invalid_base64");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a\",\"content\":\"aGk=\"},{\"filename\":\"b\",\"content\":\"a=Gk\"}]}",
		"attachments[1].content", "invalid_base64");
	refused("{" BASE ",\"attachments\":[{\"content\":\"aGk=\"}]}", "attachments[0].filename", "required");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a\"}]}", "attachments[0].content", "required");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a\",\"content\":\"aGk=\",\"content_type\":\"pdf\"}]}",
		"attachments[0].content_type", "invalid_value");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a\",\"content\":\"aGk=\",\"size\":3}]}",
		"attachments[0].size", "unknown_field");
	refused("{" BASE ",\"attachments\":[{\"filename\":\"a\",\"content\":\"aGk=\",\"content_id\":\"<x>\"}]}",
		"attachments[0].content_id", "invalid_value");
}

Test(validate, tags_metadata_send_at)
{
	refused("{" BASE ",\"tags\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\"]}", "tags",
		"too_many");
	refused("{" BASE ",\"tags\":[\"\"]}", "tags[0]", "invalid_value");
	char big[6000];
	snprintf(big, sizeof(big), "{" BASE ",\"metadata\":{\"k\":\"%04200d\"}}", 0);
	refused(big, "metadata", "too_long");
	refused("{" BASE ",\"send_at\":\"tomorrow\"}", "send_at", "invalid_datetime");
	refused("{" BASE ",\"send_at\":\"2030-02-30T00:00:00Z\"}", "send_at", "invalid_datetime");
	refused("{" BASE ",\"send_at\":\"2030-01-01T00:00:00\"}", "send_at", "invalid_datetime");
}

Test(validate, too_long_values)
{
	char body[4096];
	snprintf(body, sizeof(body), "{" BASE ",\"subject\":\"%01000d\"}", 0);
	refused(body, "subject", "too_long");
	snprintf(body, sizeof(body), "{" BASE ",\"headers\":{\"X-%080d\":\"v\"}}", 0);
	char field[128];
	snprintf(field, sizeof(field), "headers.X-%080d", 0);
	refused(body, field, "invalid_header_name");
}

Test(validate, json_body_problems)
{
	struct json_problem p;
	const char bad_utf8[] = "{\"from\":\"\xc3\x28\"}";
	cr_assert_null(validate_parse_json(bad_utf8, strlen(bad_utf8), &p));
	cr_assert(p.not_utf8);
	cr_assert_eq(p.position, 9);
	const char overlong[] = "{\"a\":\"\xc0\xaf\"}";
	cr_assert_null(validate_parse_json(overlong, strlen(overlong), &p));
	cr_assert(p.not_utf8);
	const char syntax[] = "{\"from\": \"a@example.net\",\n  \"to\": }";
	cr_assert_null(validate_parse_json(syntax, strlen(syntax), &p));
	cr_assert_not(p.not_utf8);
	cr_assert_eq(p.line, 2);
	cr_assert_gt(p.column, 0);
	cr_assert_gt(p.position, 20);
	const char dup[] = "{\"a\":1,\"a\":2}";
	cr_assert_null(validate_parse_json(dup, strlen(dup), &p));
	const char nul[] = "{\"a\":\"x\\u0000y\"}";
	cr_assert_null(validate_parse_json(nul, strlen(nul), &p));
}

Test(validate, utf8_errors_are_found_at_every_offset)
{
	/* The ASCII runs are skipped eight octets at a time: a bad octet, or a
	 * good sequence, at each offset around those words. */
	for (size_t k = 6; k < 60; k++) {
		char body[128];
		memset(body, 'a', sizeof(body));
		memcpy(body, "{\"text\":\"", 9);
		memcpy(body + 70, "\"}", 3);
		struct json_problem p;
		body[k] = (char)0xff;
		cr_assert_null(validate_parse_json(body, 72, &p));
		cr_assert(p.not_utf8);
		cr_assert_eq(p.position, (long)k, "offset %zu", k);
		if (k < 9)
			continue;
		memcpy(body + k, "\xc3\xa9", 2); /* é, then ASCII again */
		json_t *v = validate_parse_json(body, 72, &p);
		cr_assert_not_null(v, "offset %zu: %s", k, p.detail);
		json_decref(v);
		memcpy(body + k, "\xc3" "a", 2); /* a lead octet without its continuation */
		cr_assert_null(validate_parse_json(body, 72, &p));
		cr_assert_eq(p.position, (long)k);
	}
}

Test(validate, content_type)
{
	cr_assert(validate_is_json_content_type("application/json"));
	cr_assert(validate_is_json_content_type("application/json; charset=utf-8"));
	cr_assert(validate_is_json_content_type("Application/JSON;charset=\"UTF-8\""));
	cr_assert_not(validate_is_json_content_type(NULL));
	cr_assert_not(validate_is_json_content_type("text/plain"));
	cr_assert_not(validate_is_json_content_type("application/jsonx"));
	cr_assert_not(validate_is_json_content_type("application/json; charset=latin1"));
	cr_assert_not(validate_is_json_content_type("application/x-www-form-urlencoded"));
}

Test(validate, base64_and_dates)
{
	size_t n;
	unsigned char *d = validate_base64_decode("aGVs\r\nbG8=", 10, &n);
	cr_assert_not_null(d);
	cr_assert_eq(n, 5);
	free(d);
	d = validate_base64_decode("", 0, &n);
	cr_assert_not_null(d);
	cr_assert_eq(n, 0);
	free(d);
	cr_assert_null(validate_base64_decode("aGk", 3, &n));
	cr_assert_null(validate_base64_decode("aG=k", 4, &n));
	cr_assert_null(validate_base64_decode("a===", 4, &n));
	cr_assert_null(validate_base64_decode("aGk-", 4, &n));
	time_t t;
	cr_assert_eq(validate_rfc3339("1970-01-01T00:00:00Z", &t), 0);
	cr_assert_eq(t, 0);
	cr_assert_eq(validate_rfc3339("2024-02-29T12:00:00-02:30", &t), 0);
	cr_assert_eq(t, 1709217000);
	cr_assert_lt(validate_rfc3339("2023-02-29T12:00:00Z", &t), 0);
	cr_assert_lt(validate_rfc3339("2024-01-01T24:00:00Z", &t), 0);
	cr_assert_lt(validate_rfc3339("2024-01-01T00:00:00Zjunk", &t), 0);
}
