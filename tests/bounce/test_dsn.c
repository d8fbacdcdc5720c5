/*
 * Tests for the bounce parser (bounce/dsn.c) and the MIME reader under it
 * (mail/mime_parse.c), on the corpus in tests/data/dsn/: one file per MTA
 * format, every field asserted, each file read with LF and with CRLF line
 * ends.  Plus malformed-input cases: truncation at every offset, deep
 * nesting, header floods, oversize input.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce/dsn.h"
#include "mail/mime_parse.h"
#include "util/limits.h"

#define VERP "bounce+aebagbafaydqqcikbmgq2a3hc4@bounces.shop.example"

static char *load(const char *name, size_t *len)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/data/dsn/%s", src ? src : ".", name);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static char *to_crlf(const char *s, size_t n, size_t *outlen)
{
	char *o = malloc(2 * n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			o[k++] = '\r';
		o[k++] = s[i];
	}
	o[k] = '\0';
	*outlen = k;
	return o;
}

struct expect {
	const char *file;
	enum dsn_kind kind;
	const char *not_bounce_reason;
	const char *reporting_mta;
	const char *envid;
	const char *msgid;
	const char *failed_recipients;
	/* the one recipient */
	const char *final_rcpt;
	const char *original_rcpt;
	enum dsn_action action;
	const char *status;
	const char *diag_status;
	const char *remote_mta;
	int diag_code;
	const char *diag_prefix;
};

static const struct expect corpus[] = {
	{ "postfix_user_unknown.eml", DSN_RFC3464, "", "mail.example.net", "0193f7a26c1e7d409a1b2c3d4e5f6a01",
	  "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a01@shop.example", "", "nobody@example.org", "nobody@example.org",
	  DSN_ACTION_FAILED, "5.1.1", "5.1.1", "mx.example.org", 550,
	  "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table" },
	{ "exim_multipart.eml", DSN_RFC3464, "", "mx1.example.com", "",
	  "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a02@shop.example", "jdoe@example.com", "jdoe@example.com", "",
	  DSN_ACTION_FAILED, "5.0.0", "5.1.1", "mail.example.com", 550,
	  "550 5.1.1 <jdoe@example.com>: Recipient address rejected: User unknown" },
	{ "exim_text.eml", DSN_HEURISTIC, "", "", "", "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a03@shop.example",
	  "old.customer@example.co.uk", "old.customer@example.co.uk", "", DSN_ACTION_FAILED, "5.1.1", "5.1.1", "",
	  550, "550 5.1.1 <old.customer@example.co.uk>: Recipient address rejected: User unknown in virtual mailbox table" },
	{ "exchange_o365.eml", DSN_RFC3464, "", "AM0PR01MB1234.eurprd01.prod.exchangelabs.com", "",
	  "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a04@shop.example", "", "someone@contoso.com", "someone@contoso.com",
	  DSN_ACTION_FAILED, "5.1.10", "5.1.10", "", 550,
	  "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup" },
	{ "gmail.eml", DSN_RFC3464, "", "googlemail.com", "", "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a05@shop.example",
	  "jane.doe@gmail.com", "jane.doe@gmail.com", "", DSN_ACTION_FAILED, "5.1.1", "5.1.1",
	  "gmail-smtp-in.l.google.com", 550,
	  "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking" },
	{ "gmail_text_legacy.eml", DSN_HEURISTIC, "", "", "", "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a13@shop.example",
	  "nosuchuser@example.net", "nosuchuser@example.net", "", DSN_ACTION_FAILED, "5.1.1", "5.1.1", "", 550,
	  "550 5.1.1 <nosuchuser@example.net>: Recipient address rejected: User unknown in virtual alias table" },
	{ "qmail.eml", DSN_HEURISTIC, "", "", "", "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a06@shop.example", "",
	  "gone@example.biz", "", DSN_ACTION_FAILED, "5.1.1", "5.1.1", "", 550,
	  "203.0.113.9 does not like recipient. Remote host said: 550 5.1.1 <gone@example.biz>... User unknown" },
	{ "sendmail.eml", DSN_RFC3464, "", "relay.example.edu", "", "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a07@shop.example",
	  "", "student@example.edu", "", DSN_ACTION_FAILED, "5.2.1", "5.2.1", "mail.example.edu", 550,
	  "550 5.2.1 <student@example.edu>... Mailbox disabled for this recipient" },
	{ "postfix_delayed.eml", DSN_RFC3464, "", "mail.example.net", "",
	  "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a08@shop.example", "", "slow@example.info", "slow@example.info",
	  DSN_ACTION_DELAYED, "4.4.1", "", "", 0, "connect to mx.example.info[203.0.113.5]:25: Connection timed out" },
	{ "policy_571.eml", DSN_RFC3464, "", "smtp.example.org", "", "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a09@shop.example",
	  "", "ceo@bigcorp.example", "ceo@bigcorp.example", DSN_ACTION_FAILED, "5.7.1", "5.7.1",
	  "inbound.bigcorp.example", 550, "550 5.7.1 Message rejected by recipient policy: sender domain not allowed" },
	{ "mailbox_full.eml", DSN_RFC3464, "", "mx.example.fr", "", "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a10@shop.example",
	  "", "hoarder@example.fr", "hoarder@example.fr", DSN_ACTION_FAILED, "5.2.2", "5.2.2", "imap.example.fr", 552,
	  "552 5.2.2 <hoarder@example.fr>: Mailbox full, quota exceeded" },
	{ "autoreply.eml", DSN_NOT_BOUNCE, "auto-submitted", "", "", "", "", NULL, NULL, 0, NULL, NULL, NULL, 0, NULL },
	{ "out_of_office.eml", DSN_NOT_BOUNCE, "auto-reply", "", "", "", "", NULL, NULL, 0, NULL, NULL, NULL, 0, NULL },
};

static void check(const struct expect *e, const char *data, size_t len, const char *form)
{
	struct dsn_report r;
	char err[256];
	cr_assert_eq(dsn_parse(data, len, &r, err, sizeof(err)), 0, "%s %s: %s", e->file, form, err);
	cr_expect_eq(r.kind, e->kind, "%s %s: kind %s", e->file, form, dsn_kind_name(r.kind));
	cr_expect_str_eq(r.not_bounce_reason, e->not_bounce_reason, "%s %s", e->file, form);
	cr_expect_str_eq(r.reporting_mta, e->reporting_mta, "%s %s", e->file, form);
	cr_expect_str_eq(r.original_envid, e->envid, "%s %s", e->file, form);
	cr_expect_str_eq(r.orig_message_id, e->msgid, "%s %s", e->file, form);
	cr_expect_str_eq(r.bounce_to, VERP, "%s %s", e->file, form);
	cr_expect_str_eq(r.failed_recipients, e->failed_recipients, "%s %s", e->file, form);
	if (e->final_rcpt == NULL) {
		cr_expect_eq(r.nrcpts, 0, "%s %s: a non-bounce has no recipients", e->file, form);
		dsn_report_cleanup(&r);
		return;
	}
	cr_assert_eq(r.nrcpts, 1, "%s %s: %d recipients", e->file, form, r.nrcpts);
	const struct dsn_rcpt *x = &r.rcpts[0];
	cr_expect_str_eq(x->final_rcpt, e->final_rcpt, "%s %s", e->file, form);
	cr_expect_str_eq(x->original_rcpt, e->original_rcpt, "%s %s", e->file, form);
	cr_expect_eq(x->action, e->action, "%s %s: action %s", e->file, form, dsn_action_name(x->action));
	cr_expect_str_eq(x->status, e->status, "%s %s", e->file, form);
	cr_expect_str_eq(x->diag_status, e->diag_status, "%s %s", e->file, form);
	cr_expect_str_eq(x->remote_mta, e->remote_mta, "%s %s", e->file, form);
	cr_expect_eq(x->diag_code, e->diag_code, "%s %s: code %d", e->file, form, x->diag_code);
	cr_expect(strncmp(x->diagnostic, e->diag_prefix, strlen(e->diag_prefix)) == 0, "%s %s: diagnostic [%s]",
		  e->file, form, x->diagnostic);
	dsn_report_cleanup(&r);
}

Test(dsn, corpus_every_field_lf_and_crlf)
{
	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		size_t len, clen;
		char *data = load(corpus[i].file, &len);
		check(&corpus[i], data, len, "LF");
		char *crlf = to_crlf(data, len, &clen);
		check(&corpus[i], crlf, clen, "CRLF");
		free(crlf);
		free(data);
	}
}

Test(dsn, multiple_recipients_in_one_report)
{
	static const char msg[] =
		"From: MAILER-DAEMON@mx.example.net\r\n"
		"To: bounce+x@b.example\r\n"
		"Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"b\\\"q\"\r\n"
		"\r\n--b\"q\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
		"--b\"q\r\nContent-Type: message/delivery-status\r\n\r\n"
		"Reporting-MTA: dns; mx.example.net\r\n\r\n"
		"Final-Recipient: rfc822; a@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
		"Final-Recipient: rfc822; b@example.com\r\nAction: delivered (to mailbox)\r\nStatus: 2.0.0\r\n\r\n"
		"Original-Recipient: rfc822; c@example.com\r\nAction: expanded\r\nStatus: 2.0.0\r\n\r\n"
		"Final-Recipient: rfc822; d@example.com\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
		"--b\"q--\r\n";
	struct dsn_report r;
	char err[128];
	cr_assert_eq(dsn_parse(msg, sizeof(msg) - 1, &r, err, sizeof(err)), 0);
	cr_assert_eq(r.kind, DSN_RFC3464);
	cr_assert_eq(r.nrcpts, 4);
	cr_expect_str_eq(r.rcpts[0].final_rcpt, "a@example.com");
	cr_expect_eq(r.rcpts[0].action, DSN_ACTION_FAILED);
	cr_expect_eq(r.rcpts[1].action, DSN_ACTION_DELIVERED);
	cr_expect_str_eq(r.rcpts[2].final_rcpt, "c@example.com", "falls back to Original-Recipient");
	cr_expect_eq(r.rcpts[2].action, DSN_ACTION_EXPANDED);
	cr_expect_eq(r.rcpts[3].action, DSN_ACTION_RELAYED);
	cr_expect_str_eq(r.orig_message_id, "");
	dsn_report_cleanup(&r);
}

Test(dsn, ordinary_mail_is_not_a_bounce)
{
	static const char msg[] = "From: a@example.com\nTo: bounce+x@b.example\nSubject: hello\n\n550 5.1.1 in a body is not enough\n";
	struct dsn_report r;
	char err[128];
	cr_assert_eq(dsn_parse(msg, sizeof(msg) - 1, &r, err, sizeof(err)), 0);
	cr_expect_eq(r.kind, DSN_NOT_BOUNCE);
	cr_expect_str_eq(r.not_bounce_reason, "no delivery status");
	cr_expect_eq(r.nrcpts, 0);
	dsn_report_cleanup(&r);
}

Test(dsn, every_truncation_of_the_corpus_parses)
{
	static const char *files[] = { "postfix_user_unknown.eml", "gmail.eml", "qmail.eml", "exchange_o365.eml" };
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		char *data = load(files[f], &len);
		for (size_t n = 0; n <= len; n += 7) {
			char *copy = malloc(n + 1); /* exact size: ASan sees any overread */
			memcpy(copy, data, n);
			struct dsn_report r;
			char err[128];
			cr_assert_eq(dsn_parse(copy, n, &r, err, sizeof(err)), 0);
			cr_assert_leq(r.nrcpts, MF_DSN_RCPTS_MAX);
			dsn_report_cleanup(&r);
			free(copy);
		}
		free(data);
	}
}

Test(dsn, oversize_input_is_refused)
{
	size_t n = MF_BOUNCE_SIZE_MAX + 1;
	char *big = calloc(1, n);
	struct dsn_report r;
	char err[128] = "";
	cr_assert_eq(dsn_parse(big, n, &r, err, sizeof(err)), -1);
	cr_assert(strstr(err, "larger") != NULL, "%s", err);
	free(big);
}

Test(dsn, recipient_flood_is_capped)
{
	struct { char *p; size_t n, cap; } b = { malloc(1 << 20), 0, 1 << 20 };
	b.n = (size_t)snprintf(b.p, b.cap, "Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
					    "--x\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; m\n\n");
	for (int i = 0; i < 500; i++)
		b.n += (size_t)snprintf(b.p + b.n, b.cap - b.n, "Final-Recipient: rfc822; u%d@example.com\nAction: failed\n\n", i);
	struct dsn_report r;
	char err[128];
	cr_assert_eq(dsn_parse(b.p, b.n, &r, err, sizeof(err)), 0);
	cr_assert_eq(r.nrcpts, MF_DSN_RCPTS_MAX);
	dsn_report_cleanup(&r);
	free(b.p);
}

Test(mime_parse, folding_params_and_encodings)
{
	static const char msg[] =
		"Subject: one\r\n two\r\n\tthree\r\n"
		"Content-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n\r\n"
		"preamble\r\n--outer\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		"aGVsbG8g\r\nd29ybGQ=\r\n"
		"--outer\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
		"caf=C3=A9 soft=\r\nbreak =ZZ\r\n"
		"--outer  \r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"
		"--outer--\r\nepilogue\r\n";
	struct mime_part *p = NULL;
	char err[128];
	cr_assert_eq(mime_parse(msg, sizeof(msg) - 1, &p, err, sizeof(err)), 0);
	cr_expect_str_eq(mime_header_get(p, "subject"), "one two\tthree");
	cr_expect_str_eq(p->ctype, "multipart/mixed");
	cr_assert_eq(p->nchildren, 3);
	cr_expect_str_eq(p->children[0]->body, "hello world");
	cr_expect_str_eq(p->children[1]->body, "caf\xc3\xa9 soft" "break =ZZ");
	cr_expect_str_eq(p->children[2]->ctype, "message/rfc822");
	cr_assert_eq(p->children[2]->nchildren, 1);
	cr_expect_str_eq(mime_header_get(p->children[2]->children[0], "Message-Id"), "<x@y>");
	char v[64];
	cr_expect_eq(mime_param_get("a/b; x=1; boundary=\"q\\\"r;s\"", "boundary", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "q\"r;s");
	cr_expect_eq(mime_param_get("a/b; xboundary=1", "boundary", v, sizeof(v)), -1);
	mime_part_free(p);
}

Test(mime_parse, deep_nesting_and_header_flood_are_bounded)
{
	size_t cap = 1 << 20, n = 0;
	char *m = malloc(cap);
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(m + n, cap - n, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
	struct mime_part *p = NULL;
	char err[128];
	cr_assert_eq(mime_parse(m, n, &p, err, sizeof(err)), 0);
	int depth = 0;
	for (struct mime_part *q = p; q->nchildren > 0; q = q->children[0])
		depth++;
	cr_expect_leq(depth, MF_MIME_DEPTH_MAX);
	mime_part_free(p);

	n = 0;
	for (int i = 0; i < 5000 && n + 64 < cap; i++)
		n += (size_t)snprintf(m + n, cap - n, "X-H%d: v\n", i);
	n += (size_t)snprintf(m + n, cap - n, "X-Long: ");
	while (n + 2 < cap / 2)
		m[n++] = 'a';
	m[n++] = '\n';
	cr_assert_eq(mime_parse(m, n, &p, err, sizeof(err)), 0);
	cr_expect_eq(p->nhdrs, MF_MIME_HEADERS_MAX);
	mime_part_free(p);
	free(m);
}

Test(dsn, fields_are_valid_utf8)
{
	/* Latin-1 in the diagnostic, a truncated UTF-8 sequence in the address,
	 * a valid "é" that must survive. */
	static const char msg[] =
		"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
		"--x\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.caf\xc3\xa9.example\n\n"
		"Final-Recipient: rfc822; j\xc3@example.com\nAction: failed\nStatus: 5.1.1\n"
		"Diagnostic-Code: smtp; 550 5.1.1 Bo\xeete inconnue\n--x--\n";
	struct dsn_report r;
	char err[128];
	cr_assert_eq(dsn_parse(msg, sizeof(msg) - 1, &r, err, sizeof(err)), 0);
	cr_assert_eq(r.nrcpts, 1);
	cr_expect_str_eq(r.reporting_mta, "mx.caf\xc3\xa9.example");
	cr_expect_str_eq(r.rcpts[0].final_rcpt, "j?@example.com");
	cr_expect_str_eq(r.rcpts[0].diagnostic, "550 5.1.1 Bo?te inconnue");
	dsn_report_cleanup(&r);
}
