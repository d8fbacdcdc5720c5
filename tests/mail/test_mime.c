/*
 * Tests for mail/mime.c: every case is composed, then parsed back by an
 * independent parser (Python's email package, tests/mail/mime_check.py),
 * which checks that headers and bodies decode to the original strings,
 * attachments come back byte-identical, Bcc/tags/metadata are absent and
 * no line is longer than 998 octets.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mail/mime.h"
#include "util/xmalloc.h"

#define MSG_MAX (16u * 1024u * 1024u)

static void addr_set(struct mail_address *a, const char *name, const char *addr)
{
	a->name = name ? xstrdup(name) : NULL;
	a->addr = xstrdup(addr);
}

static void rcpt_add(struct mail_request *r, enum rcpt_kind k, const char *name, const char *addr)
{
	r->rcpts = xrealloc(r->rcpts, sizeof(*r->rcpts) * (size_t)(r->nrcpts + 1));
	addr_set(&r->rcpts[r->nrcpts].a, name, addr);
	r->rcpts[r->nrcpts++].kind = k;
}

static void header_add(struct mail_header **h, int *n, const char *name, const char *value)
{
	*h = xrealloc(*h, sizeof(**h) * (size_t)(*n + 1));
	(*h)[*n].name = xstrdup(name);
	(*h)[*n].value = xstrdup(value);
	(*n)++;
}

static void att_add(struct mail_request *r, const char *filename, const char *ctype, const char *cid,
		    const void *data, size_t len)
{
	r->atts = xrealloc(r->atts, sizeof(*r->atts) * (size_t)(r->natts + 1));
	struct mail_attachment *a = &r->atts[r->natts++];
	a->filename = xstrdup(filename);
	a->content_type = xstrdup(ctype);
	a->content_id = cid ? xstrdup(cid) : NULL;
	a->data = xmalloc(len ? len : 1);
	memcpy(a->data, data, len);
	a->len = len;
}

static json_t *addr_list(const struct mail_request *r, int kind)
{
	json_t *l = json_array();
	for (int i = 0; i < r->nrcpts; i++)
		if ((int)r->rcpts[i].kind == kind)
			json_array_append_new(l, json_pack("[ss]", r->rcpts[i].a.name ? r->rcpts[i].a.name : "",
							   r->rcpts[i].a.addr));
	return l;
}

static char *hex(const unsigned char *p, size_t n)
{
	char *s = xmalloc(2 * n + 1);
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02x", p[i]);
	s[2 * n] = '\0';
	return s;
}

/* The expectations for mime_check.py, from the request itself. */
static json_t *expect_of(const struct mail_request *r, const char *msgid, time_t date)
{
	json_t *e = json_object();
	json_object_set_new(e, "message_id", json_string(msgid));
	json_object_set_new(e, "date", json_integer((json_int_t)date));
	json_object_set_new(e, "subject", json_string(r->subject ? r->subject : ""));
	json_object_set_new(e, "from", json_pack("[[ss]]", r->from.name ? r->from.name : "", r->from.addr));
	json_object_set_new(e, "to", addr_list(r, RCPT_TO));
	json_object_set_new(e, "cc", addr_list(r, RCPT_CC));
	json_t *rt = json_array();
	for (int i = 0; i < r->nreply_to; i++)
		json_array_append_new(rt, json_pack("[ss]", r->reply_to[i].name ? r->reply_to[i].name : "",
						    r->reply_to[i].addr));
	json_object_set_new(e, "reply-to", rt);
	json_object_set_new(e, "text", r->text ? json_string(r->text) : json_null());
	json_object_set_new(e, "html", r->html ? json_string(r->html) : json_null());
	json_t *custom = json_object();
	for (int i = 0; i < r->nheaders; i++)
		json_object_set_new(custom, r->headers[i].name, json_string(r->headers[i].value));
	json_object_set_new(e, "custom", custom);
	json_t *atts = json_array();
	for (int i = 0; i < r->natts; i++) {
		char *h = hex(r->atts[i].data, r->atts[i].len);
		json_t *a = json_pack("{ssssss}", "filename", r->atts[i].filename, "content_type",
				      r->atts[i].content_type, "hex", h);
		if (r->atts[i].content_id)
			json_object_set_new(a, "content_id", json_string(r->atts[i].content_id));
		json_array_append_new(atts, a);
		free(h);
	}
	json_object_set_new(e, "attachments", atts);
	json_t *absent = json_array();
	for (int i = 0; i < r->nrcpts; i++)
		if (r->rcpts[i].kind == RCPT_BCC)
			json_array_append_new(absent, json_string(r->rcpts[i].a.addr));
	for (int i = 0; i < r->ntags; i++)
		json_array_append_new(absent, json_string(r->tags[i]));
	for (int i = 0; i < r->nmetadata; i++)
		json_array_append_new(absent, json_string(r->metadata[i].value));
	json_object_set_new(e, "absent", absent);
	return e;
}

static void base_request(struct mail_request *r)
{
	mail_request_init(r);
	addr_set(&r->from, "Acme Billing", "billing@acme.example");
	rcpt_add(r, RCPT_TO, "Jane Doe", "jane@example.org");
	r->subject = xstrdup("Your invoice");
}

static char *write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

static const char *srcdir(void)
{
	const char *s = getenv("MAILFERRY_TEST_SRCDIR");
	return s ? s : ".";
}

/* Composes r, runs mime_check.py with the expectations (edit adds to
 * them), and returns the composed message (caller frees). */
static char *compose_and_check(struct mail_request *r, void (*edit)(json_t *), size_t *lenp)
{
	const char *msgid = "0190b3c2-7a11-7000-8000-000000000001@acme.example";
	time_t date = 1796000000;
	struct mime_params p = {.message_id = msgid, .date = date, .dkim = NULL};
	struct buf out;
	char err[256] = "";

	buf_init(&out, MSG_MAX);
	cr_assert_eq(mime_compose(r, &p, &out, err, sizeof(err)), 0, "compose: %s", err);
	json_t *e = expect_of(r, msgid, date);
	if (edit)
		edit(e);
	char *js = json_dumps(e, JSON_ENSURE_ASCII);
	json_decref(e);

	char *dir = th_tmpdir("mime");
	char *eml = write_file(dir, "m.eml", out.data, out.len);
	char *exp = write_file(dir, "expect.json", js, strlen(js));
	char *output = NULL;
	int rc = th_run(&output, "/usr/bin/python3 %s/tests/mail/mime_check.py %s %s", srcdir(), eml,
			exp);
	cr_assert_eq(rc, 0, "mime_check failed:\n%s\n--- message ---\n%.3000s", output ? output : "",
		     out.data);
	free(output);
	free(eml);
	free(exp);
	free(js);
	th_rmrf(dir);
	free(dir);
	char *msg = buf_steal(&out, lenp);
	buf_cleanup(&out);
	return msg;
}

static void expect_text_only(json_t *e)
{
	json_object_set_new(e, "structure", json_string("text/plain"));
	json_object_set_new(e, "cte", json_pack("{ss}", "text/plain", "7bit"));
	json_object_set_new(e, "header_width", json_integer(78));
}

Test(mime, text_only_is_7bit_single_part)
{
	struct mail_request r;
	base_request(&r);
	r.text = xstrdup("Hello Jane,\n\nyour invoice is attached.\n.\nBye");
	size_t n;
	char *m = compose_and_check(&r, expect_text_only, &n);
	cr_assert(strncmp(m, "Date: Mon, 30 Nov 2026 00:53:20 +0000\r\n", 39) == 0, "%.40s", m);
	cr_assert(strstr(m, "\r\nMIME-Version: 1.0\r\n") != NULL);
	free(m);
	mail_request_cleanup(&r);
}

static void expect_html_only(json_t *e)
{
	json_object_set_new(e, "structure", json_string("text/html"));
}

Test(mime, html_only)
{
	struct mail_request r;
	base_request(&r);
	r.html = xstrdup("<p>Hello <b>Jane</b> = &amp; café</p>");
	size_t n;
	char *m = compose_and_check(&r, expect_html_only, &n);
	cr_assert(strstr(m, "Content-Transfer-Encoding: quoted-printable") != NULL);
	free(m);
	mail_request_cleanup(&r);
}

static void expect_alternative(json_t *e)
{
	json_object_set_new(e, "structure",
			    json_string("multipart/alternative(text/plain,text/html)"));
}

Test(mime, alternative)
{
	struct mail_request r;
	base_request(&r);
	r.text = xstrdup("Plain version");
	r.html = xstrdup("<p>HTML version</p>");
	size_t n;
	free(compose_and_check(&r, expect_alternative, &n));
	mail_request_cleanup(&r);
}

static void expect_mixed(json_t *e)
{
	json_object_set_new(e, "structure",
			    json_string("multipart/mixed(multipart/alternative(text/plain,text/html),"
					"application/pdf,application/octet-stream,text/csv)"));
}

Test(mime, attachments_are_byte_identical)
{
	struct mail_request r;
	base_request(&r);
	r.text = xstrdup("See attached.");
	r.html = xstrdup("<p>See attached.</p>");
	unsigned char bin[3000];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7 + i / 256);
	att_add(&r, "invoice.pdf", "application/pdf", NULL, bin, sizeof(bin));
	att_add(&r, "empty.bin", "application/octet-stream", NULL, "", 0);
	/* Text attachments keep their bytes, bare LF and all. */
	const char *csv = "a,b\nc,d\r\ne \n--=_mf_\n";
	att_add(&r, "data.csv", "text/csv", NULL, csv, strlen(csv));
	size_t n;
	free(compose_and_check(&r, expect_mixed, &n));
	mail_request_cleanup(&r);
}

static void expect_related(json_t *e)
{
	json_object_set_new(e, "structure",
			    json_string("multipart/mixed(multipart/alternative(text/plain,"
					"multipart/related(text/html,image/png)),application/pdf)"));
}

Test(mime, inline_image_in_related)
{
	struct mail_request r;
	base_request(&r);
	r.text = xstrdup("Logo below");
	r.html = xstrdup("<p><img src=\"cid:logo@acme\"></p>");
	const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 0xff};
	att_add(&r, "logo.png", "image/png", "logo@acme", png, sizeof(png));
	att_add(&r, "terms.pdf", "application/pdf", NULL, "%PDF-1.4", 8);
	size_t n;
	char *m = compose_and_check(&r, expect_related, &n);
	cr_assert(strstr(m, "Content-Disposition: inline") != NULL);
	free(m);
	mail_request_cleanup(&r);
}

static void expect_non_ascii(json_t *e)
{
	json_object_set_new(e, "header_width", json_integer(78));
}

Test(mime, non_ascii_subject_names_and_filenames)
{
	struct mail_request r;
	mail_request_init(&r);
	addr_set(&r.from, "Zoë Müller-Lüdenscheidt, Buchhaltung", "zoe@acme.example");
	rcpt_add(&r, RCPT_TO, "山田 太郎", "taro@example.jp");
	rcpt_add(&r, RCPT_TO, "\"Quoted\" O'Brien, Jr.", "ob@example.ie");
	rcpt_add(&r, RCPT_CC, "Émilie 🎉 Dubois-Château de la Grande Rivière et des Alentours", "e@example.fr");
	r.reply_to = xcalloc(1, sizeof(*r.reply_to));
	addr_set(&r.reply_to[0], "Support =?utf-8?q?x?= team", "support@acme.example");
	r.nreply_to = 1;
	r.subject = xstrdup("Ihre Rechnung für März — 請求書 🎉🎉🎉 with a rather long tail of words "
			    "that must be folded across several lines without splitting any "
			    "character ✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓");
	r.text = xstrdup("Grüße aus Köln — 你好");
	att_add(&r, "Rechnung März 2026 — Übersicht für Zoë und alle anderen Empfänger.pdf",
		"application/pdf", NULL, "x", 1);
	att_add(&r, "résumé.txt", "text/plain", NULL, "cv", 2);
	size_t n;
	free(compose_and_check(&r, expect_non_ascii, &n));
	mail_request_cleanup(&r);
}

Test(mime, long_lines_and_trailing_space_use_qp)
{
	struct mail_request r;
	base_request(&r);
	struct buf t;
	buf_init(&t, 1 << 20);
	for (int i = 0; i < 300; i++)
		buf_puts(&t, "word ");
	buf_puts(&t, "\nline with trailing space \t\n");
	for (int i = 0; i < 1500; i++)
		buf_putc(&t, 'x');
	buf_puts(&t, "\n.leading dot\n=equals=\n");
	r.text = buf_steal(&t, NULL);
	buf_cleanup(&t);
	size_t n;
	char *m = compose_and_check(&r, NULL, &n);
	cr_assert(strstr(m, "Content-Transfer-Encoding: quoted-printable") != NULL);
	free(m);
	mail_request_cleanup(&r);
}

Test(mime, cjk_text_is_base64)
{
	struct mail_request r;
	base_request(&r);
	r.text = xstrdup("こんにちは世界。これは日本語のテキストです。\n二行目。");
	size_t n;
	char *m = compose_and_check(&r, NULL, &n);
	cr_assert(strstr(m, "Content-Transfer-Encoding: base64") != NULL);
	free(m);
	mail_request_cleanup(&r);
}

Test(mime, custom_headers_encoded_and_folded)
{
	struct mail_request r;
	base_request(&r);
	r.text = xstrdup("hi");
	header_add(&r.headers, &r.nheaders, "X-Campaign", "Spring sale — été");
	header_add(&r.headers, &r.nheaders, "List-Unsubscribe",
		   "<mailto:unsub@acme.example?subject=unsubscribe>, "
		   "<https://acme.example/unsubscribe/0190b3c2-7a11-7000-8000-000000000001>");
	header_add(&r.headers, &r.nheaders, "X-Spaces", "a  b\tc");
	header_add(&r.headers, &r.nheaders, "X-Empty", "");
	size_t n;
	free(compose_and_check(&r, expect_non_ascii, &n));
	mail_request_cleanup(&r);
}

Test(mime, very_long_word_subject_stays_under_998)
{
	struct mail_request r;
	base_request(&r);
	char *s = xmalloc(2501);
	memset(s, 'A', 2500);
	s[2500] = '\0';
	free(r.subject);
	r.subject = s;
	r.text = xstrdup("x");
	size_t n;
	free(compose_and_check(&r, expect_non_ascii, &n));
	mail_request_cleanup(&r);
}

static void expect_bcc(json_t *e)
{
	json_object_set_new(e, "to", json_array());
}

Test(mime, bcc_tags_and_metadata_never_in_message)
{
	struct mail_request r;
	base_request(&r);
	rcpt_add(&r, RCPT_CC, NULL, "carl@example.org");
	rcpt_add(&r, RCPT_BCC, "Secret Boss", "boss-hidden@example.net");
	r.text = xstrdup("hi");
	r.tags = xcalloc(1, sizeof(char *));
	r.tags[0] = xstrdup("tag-must-not-leak");
	r.ntags = 1;
	header_add(&r.metadata, &r.nmetadata, "customer", "metadata-must-not-leak");
	size_t n;
	char *m = compose_and_check(&r, NULL, &n);
	cr_assert(strstr(m, "Secret Boss") == NULL);
	free(m);
	mail_request_cleanup(&r);

	/* Bcc only: the To field is an empty group, not the Bcc address. */
	mail_request_init(&r);
	addr_set(&r.from, NULL, "a@acme.example");
	rcpt_add(&r, RCPT_BCC, NULL, "hidden@example.net");
	r.subject = xstrdup("");
	r.text = xstrdup("hi");
	m = compose_and_check(&r, expect_bcc, &n);
	cr_assert(strstr(m, "To: undisclosed-recipients:;\r\n") != NULL);
	free(m);
	mail_request_cleanup(&r);
}

Test(mime, attachment_only_and_empty_body)
{
	struct mail_request r;
	base_request(&r);
	att_add(&r, "a.bin", "application/octet-stream", NULL, "\0\1\2", 3);
	size_t n;
	free(compose_and_check(&r, NULL, &n));
	mail_request_cleanup(&r);

	base_request(&r);
	free(compose_and_check(&r, NULL, &n));
	mail_request_cleanup(&r);
}

Test(mime, refuses_structural_custom_header_and_oversize)
{
	struct mail_request r;
	base_request(&r);
	r.text = xstrdup("hi");
	header_add(&r.headers, &r.nheaders, "content-type", "text/evil");
	struct mime_params p = {.message_id = "x@y", .date = 1, .dkim = NULL};
	struct buf out;
	char err[256] = "";
	buf_init(&out, 1 << 20);
	cr_assert_eq(mime_compose(&r, &p, &out, err, sizeof(err)), MIME_INVALID);
	cr_assert(strstr(err, "content-type") != NULL, "%s", err);
	buf_cleanup(&out);
	mail_request_cleanup(&r);

	base_request(&r);
	r.text = xmalloc(5000);
	memset(r.text, 'a', 4999);
	r.text[4999] = '\0';
	buf_init(&out, 2048);
	cr_assert_eq(mime_compose(&r, &p, &out, err, sizeof(err)), MIME_TOO_BIG);
	cr_assert(strstr(err, "max_message_size") != NULL, "%s", err);
	cr_assert_eq(out.len, 0);
	buf_cleanup(&out);
	mail_request_cleanup(&r);
}

static void expect_inline_without_html(json_t *e)
{
	json_object_set_new(e, "structure", json_string("multipart/mixed(text/plain,image/gif)"));
	json_object_set_new(e, "header_width", json_integer(78));
}

Test(mime, inline_part_without_html_and_many_recipients)
{
	struct mail_request r;
	base_request(&r);
	for (int i = 0; i < 48; i++) {
		char name[64], addr[64];
		snprintf(name, sizeof(name), i % 2 ? "Recipient Number %d" : "Empf\xc3\xa4nger %d", i);
		snprintf(addr, sizeof(addr), "rcpt%d@example.org", i);
		rcpt_add(&r, i % 3 ? RCPT_TO : RCPT_CC, name, addr);
	}
	r.text = xstrdup("An inline part with no html goes to multipart/mixed.");
	att_add(&r, "dot.gif", "image/gif", "dot@acme", "GIF89a", 6);
	size_t n;
	char *m = compose_and_check(&r, expect_inline_without_html, &n);
	cr_assert(strstr(m, "Content-Disposition: inline; filename=dot.gif\r\n") != NULL);
	free(m);
	mail_request_cleanup(&r);
}

Test(mime, appends_after_existing_bytes_up_to_the_exact_maximum)
{
	struct mail_request r;
	base_request(&r);
	r.text = xstrdup("Order 1001 ships tomorrow.\n");
	struct mime_params p = {.message_id = "x@y", .date = 1, .dkim = NULL};
	char err[256] = "";
	struct buf one;
	buf_init(&one, 1 << 20);
	cr_assert_eq(mime_compose(&r, &p, &one, err, sizeof(err)), 0, "%s", err);
	/* Written straight into out after what it held: exactly the same
	 * bytes when the maximum leaves just enough room ... */
	struct buf out;
	buf_init(&out, 6 + one.len);
	buf_puts(&out, "PREFIX");
	cr_assert_eq(mime_compose(&r, &p, &out, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(out.len, 6 + one.len);
	cr_assert(memcmp(out.data, "PREFIX", 6) == 0 && memcmp(out.data + 6, one.data, one.len) == 0);
	buf_cleanup(&out);
	/* ... and one byte less leaves out as it was. */
	buf_init(&out, 6 + one.len - 1);
	buf_puts(&out, "PREFIX");
	cr_assert_eq(mime_compose(&r, &p, &out, err, sizeof(err)), MIME_TOO_BIG);
	cr_assert(strstr(err, "max_message_size") != NULL, "%s", err);
	cr_assert_eq(out.len, 6);
	cr_assert_str_eq(buf_cstr(&out), "PREFIX");
	buf_cleanup(&out);
	buf_cleanup(&one);
	mail_request_cleanup(&r);
}

/* The class of a failure, not its text, says what went wrong: a header
 * whose name holds "size" is invalid, not too big. */
Test(mime, failures_are_classified)
{
	struct mail_request r;
	struct mime_params p = {.message_id = "x@y", .date = 1, .dkim = NULL};
	struct buf out;
	char err[256] = "";
	buf_init(&out, 1 << 20);

	base_request(&r);
	r.text = xstrdup("hi");
	header_add(&r.headers, &r.nheaders, "x-size", "a\r\nb");
	cr_assert_eq(mime_compose(&r, &p, &out, err, sizeof(err)), MIME_INVALID, "%s", err);
	cr_assert(strstr(err, "x-size") != NULL, "%s", err);
	mail_request_cleanup(&r);

	base_request(&r);
	r.text = xstrdup("hi");
	att_add(&r, "a.bin", "not a type", NULL, "x", 1);
	cr_assert_eq(mime_compose(&r, &p, &out, err, sizeof(err)), MIME_INVALID, "%s", err);
	mail_request_cleanup(&r);

	base_request(&r);
	r.text = xstrdup("hi");
	struct mime_params bad = {.message_id = "no <id>", .date = 1, .dkim = NULL};
	cr_assert_eq(mime_compose(&r, &bad, &out, err, sizeof(err)), MIME_INVALID, "%s", err);
	cr_assert_eq(mime_compose(&r, &p, &out, err, sizeof(err)), MIME_OK, "%s", err);
	mail_request_cleanup(&r);
	buf_cleanup(&out);
}
