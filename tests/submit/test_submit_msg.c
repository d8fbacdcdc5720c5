/*
 * test_submit_msg.c - the check and preparation of a message submitted
 * over SMTP (submit/submit_msg.c), and the SASL decoders it relies on
 * (smtpd/smtp_auth.c).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "smtpd/smtp_auth.h"
#include "submit/submit_msg.h"

static const struct submit_msg_params P = { .msgid_domain = "relay.test", .msgid_local = "0193-id",
					    .date = 0, .max_size = 65536 };

static enum submit_msg_status prep(const char *msg, const struct submit_msg_params *p, struct submit_msg *m)
{
	return submit_msg_prepare(msg, strlen(msg), p ? p : &P, m);
}

Test(submit_msg, keeps_the_message_and_takes_out_tags_and_metadata)
{
	struct submit_msg m;
	const char *in = "Received: from x\r\n\tby y; now\r\n"
			 "From: Shop <orders@shop.test>\r\n"
			 "To: a@example.test,\r\n Other <c@example.test>\r\n"
			 "X-Mailferry-Tag: order\r\n"
			 "x-mailferry-tag:  shop \r\n"
			 "X-Mailferry-Metadata: order_id = 42\r\n"
			 "X-Mailferry-Metadata: note=a \"quoted\" value\r\n"
			 "Subject: Order\r\n 42\r\n"
			 "Message-ID: <abc@shop.test>\r\n"
			 "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
			 "\r\n"
			 "X-Mailferry-Tag: in the body stays\r\n";
	cr_assert_eq(prep(in, NULL, &m), SUBMIT_MSG_OK, "%s", m.why);
	cr_assert_str_eq(m.from, "Shop <orders@shop.test>");
	cr_assert_str_eq(m.subject, "Order 42");
	cr_assert_str_eq(m.message_id, "abc@shop.test");
	cr_assert_eq(m.message_id_added, 0);
	cr_assert_eq(m.ntags, 2);
	cr_assert_str_eq(m.tags[0], "order");
	cr_assert_str_eq(m.tags[1], "shop");
	cr_assert_str_eq(m.metadata.data, "{\"order_id\":\"42\",\"note\":\"a \\\"quoted\\\" value\"}");
	cr_assert_null(strstr(m.body.data, "X-Mailferry-Tag: order"));
	cr_assert_null(strstr(m.body.data, "X-Mailferry-Metadata"));
	cr_assert_not_null(strstr(m.body.data, "\r\n\r\nX-Mailferry-Tag: in the body stays\r\n"));
	cr_assert_not_null(strstr(m.body.data, "To: a@example.test,\r\n Other <c@example.test>\r\n"));
	cr_assert_str_eq(submit_msg_kind(&m, "a@example.test"), "to");
	cr_assert_str_eq(submit_msg_kind(&m, "C@example.test"), "to");
	cr_assert_str_eq(submit_msg_kind(&m, "hidden@example.test"), "bcc");
	cr_assert_str_eq(submit_msg_kind(&m, "example.test"), "bcc");
	submit_msg_cleanup(&m);
}

Test(submit_msg, adds_date_and_message_id_as_an_mta_does)
{
	struct submit_msg m;
	cr_assert_eq(prep("From: a@shop.test\r\nCc: b@example.test\r\n\r\nhi\r\n", NULL, &m), SUBMIT_MSG_OK);
	cr_assert_eq(m.message_id_added, 1);
	cr_assert_str_eq(m.message_id, "0193-id@relay.test");
	cr_assert_str_eq(m.body.data, "From: a@shop.test\r\nCc: b@example.test\r\n"
				      "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\nMessage-ID: <0193-id@relay.test>\r\n\r\nhi\r\n");
	cr_assert_str_eq(m.subject, "");
	cr_assert_str_eq(submit_msg_kind(&m, "b@example.test"), "cc");
	submit_msg_cleanup(&m);
}

Test(submit_msg, refuses_what_breaks_downstream)
{
	struct submit_msg_params eight = P;
	eight.body_8bitmime = 1;
	char longline[1200] = "From: a@b.test\r\n\r\n";
	memset(longline + strlen(longline), 'x', 999);
	struct {
		const char *msg;
		const struct submit_msg_params *p;
		enum submit_msg_status want;
	} cases[] = {
		{ "From: a@b.test\r\n\r\nbare\nLF\r\n", NULL, SUBMIT_MSG_BARE_EOL },
		{ "From: a@b.test\r\n\r\nbare\rCR\r\n", NULL, SUBMIT_MSG_BARE_EOL },
		{ "From: a@b.test\r\n\r\nends in CR\r", NULL, SUBMIT_MSG_BARE_EOL },
		{ "From: a@b.test\r\n\r\ncaf\xc3\xa9\r\n", NULL, SUBMIT_MSG_8BIT },
		{ "From: a@b.test\r\n\r\ncaf\xc3\xa9\r\n", &eight, SUBMIT_MSG_OK },
		{ longline, NULL, SUBMIT_MSG_LONG_LINE },
		{ "Subject: x\r\n\r\nno from\r\n", NULL, SUBMIT_MSG_NO_FROM },
		{ "From: a@b.test\r\nFrom: c@b.test\r\n\r\n", NULL, SUBMIT_MSG_NO_FROM },
		{ "From: a@b.test\r\nnot a header\r\n\r\n", NULL, SUBMIT_MSG_BAD_HEADER },
		{ " From: a@b.test\r\n\r\n", NULL, SUBMIT_MSG_BAD_HEADER },
		{ "From: a@b.test\r\nMessage-ID: none\r\n\r\n", NULL, SUBMIT_MSG_BAD_HEADER },
		{ "From: a@b.test\r\nX-Mailferry-Tag:\r\n\r\n", NULL, SUBMIT_MSG_BAD_TAG },
		{ "From: a@b.test\r\nX-Mailferry-Metadata: novalue\r\n\r\n", NULL, SUBMIT_MSG_BAD_META },
		{ "From: a@b.test\r\nX-Mailferry-Metadata: =v\r\n\r\n", NULL, SUBMIT_MSG_BAD_META },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct submit_msg m;
		enum submit_msg_status st = prep(cases[i].msg, cases[i].p, &m);
		cr_expect_eq(st, cases[i].want, "case %zu: %d (%s)", i, st, m.why);
		submit_msg_cleanup(&m);
	}
	/* A NUL octet (strlen would stop at it). */
	struct submit_msg m;
	cr_assert_eq(submit_msg_prepare("From: a@b.test\r\n\r\na\0b\r\n", 23, &P, &m), SUBMIT_MSG_NUL);
	submit_msg_cleanup(&m);
	/* 998 octets is the most a line may have. */
	longline[strlen("From: a@b.test\r\n\r\n") + 998] = '\0';
	cr_assert_eq(prep(longline, NULL, &m), SUBMIT_MSG_OK, "%s", m.why);
	submit_msg_cleanup(&m);
	/* The Date and Message-ID added must fit in max_size too. */
	struct submit_msg_params tiny = P;
	tiny.max_size = 30;
	cr_assert_eq(prep("From: a@b.test\r\n\r\nhi\r\n", &tiny, &m), SUBMIT_MSG_TOO_BIG);
	submit_msg_cleanup(&m);
}

Test(smtp_auth, plain_and_login)
{
	char az[64], user[64], pass[64];
	/* "\0shop\0mf_key" */
	cr_assert_eq(smtp_auth_plain_decode("AHNob3AAbWZfa2V5", 16, az, sizeof(az), user, sizeof(user), pass,
					    sizeof(pass)), 0);
	cr_assert_str_eq(az, "");
	cr_assert_str_eq(user, "shop");
	cr_assert_str_eq(pass, "mf_key");
	/* "admin\0shop\0pw" with an authzid */
	cr_assert_eq(smtp_auth_plain_decode("YWRtaW4Ac2hvcABwdw==", 20, az, sizeof(az), user, sizeof(user), pass,
					    sizeof(pass)), 0);
	cr_assert_str_eq(az, "admin");
	/* No second NUL, an empty password, a third NUL, bad base64, "=". */
	const char *bad[] = { "AHNob3A=", "AHNob3AA", "AHNob3AAcHcAeA==", "!!!!", "=" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(smtp_auth_plain_decode(bad[i], strlen(bad[i]), az, sizeof(az), user, sizeof(user), pass,
						    sizeof(pass)), -1, "%s", bad[i]);
	/* Too long for the caller's array. */
	cr_assert_eq(smtp_auth_plain_decode("AHNob3AAbWZfa2V5", 16, az, sizeof(az), user, 4, pass, sizeof(pass)), -1);
	cr_assert_eq(smtp_auth_login_decode("c2hvcA==", 8, user, sizeof(user)), 0);
	cr_assert_str_eq(user, "shop");
	cr_assert_eq(smtp_auth_login_decode("=", 1, user, sizeof(user)), 0);
	cr_assert_str_eq(user, "");
	cr_assert_eq(smtp_auth_login_decode("AA==", 4, user, sizeof(user)), -1, "a NUL in a LOGIN value");
}

/* To/Cc/Bcc from the envelope and the header fields (RFC 5322 §3.4): a
 * recipient is to or cc when one of the field's addresses is it, never
 * because its text appears in a display name, comment or group name. */
Test(submit_msg, kind_of_each_recipient_by_address_not_by_text)
{
	struct {
		const char *to, *cc, *rcpt, *want;
	} v[] = {
		/* display names: bare, quoted (with a comma), one that looks like an address */
		{ "Ann Example <ann@example.test>", NULL, "ann@example.test", "to" },
		{ "\"Smith, Bob\" <bob@example.test>, ann@example.test", NULL, "bob@example.test", "to" },
		{ "\"Smith, Bob\" <bob@example.test>, ann@example.test", NULL, "ann@example.test", "to" },
		{ "\"eve@example.test\" <ann@example.test>", NULL, "eve@example.test", "bcc" },
		{ "eve@example.test <ann@example.test>", NULL, "eve@example.test", "bcc" },
		/* RFC 2047 encoded words in the display name */
		{ "=?UTF-8?Q?J=C3=B6rg?= <joerg@example.test>", NULL, "joerg@example.test", "to" },
		{ "=?utf-8?q?eve@example.test?= <ann@example.test>", NULL, "eve@example.test", "bcc" },
		/* comments, also ones holding an address */
		{ "ann@example.test (Ann, eve@example.test)", NULL, "ann@example.test", "to" },
		{ "ann@example.test (Ann, eve@example.test)", NULL, "eve@example.test", "bcc" },
		{ "(a (nested) one) ann@example.test", NULL, "ann@example.test", "to" },
		/* quoted local parts, quoted or not in the envelope */
		{ "\"john doe\"@example.test", NULL, "\"john doe\"@example.test", "to" },
		{ "<\"john.doe\"@example.test>", NULL, "john.doe@example.test", "to" },
		{ "john.doe@example.test", NULL, "\"john.doe\"@example.test", "to" },
		{ "\"a,b\"@example.test", NULL, "b@example.test", "bcc" },
		/* groups */
		{ "undisclosed-recipients:;", NULL, "ann@example.test", "bcc" },
		{ "undisclosed-recipients:;", "Team: ann@example.test, Bob <bob@example.test>;", "bob@example.test", "cc" },
		{ "ann@example.test:;", NULL, "ann@example.test", "bcc" },
		/* case-insensitive domains (and local parts) */
		{ "Ann <ann@EXAMPLE.Test>", NULL, "ann@example.test", "to" },
		{ "ann@example.test", NULL, "Ann@Example.TEST", "to" },
		/* lookalikes: a longer local part or domain */
		{ "joann@example.test, ann@example.test.evil", NULL, "ann@example.test", "bcc" },
		{ "ann@sub.example.test", NULL, "ann@example.test", "bcc" },
		/* in To and Cc: to wins */
		{ "ann@example.test", "ann@example.test", "ann@example.test", "to" },
		{ NULL, "ann@example.test", "ann@example.test", "cc" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char msg[512];
		snprintf(msg, sizeof(msg), "From: a@shop.test\r\n%s%s%s%s%s%s\r\nx\r\n", v[i].to ? "To: " : "",
			 v[i].to ? v[i].to : "", v[i].to ? "\r\n" : "", v[i].cc ? "Cc: " : "", v[i].cc ? v[i].cc : "",
			 v[i].cc ? "\r\n" : "");
		struct submit_msg m;
		cr_assert_eq(prep(msg, NULL, &m), SUBMIT_MSG_OK, "%zu: %s", i, m.why);
		cr_assert_str_eq(submit_msg_kind(&m, v[i].rcpt), v[i].want, "%zu: To: %s / Cc: %s, %s", i,
				 v[i].to ? v[i].to : "-", v[i].cc ? v[i].cc : "-", v[i].rcpt);
		submit_msg_cleanup(&m);
	}
	/* Folded fields, two To: fields, a group across a fold. */
	struct submit_msg m;
	cr_assert_eq(prep("From: a@shop.test\r\nTo: \"Ann\r\n Example\" <ann@example.test>,\r\n\tFriends:\r\n bob@example.test;\r\n"
			  "To: \"broken <eve@example.test>\r\nCc: (unclosed dan@example.test\r\n"
			  "To: carl@example.test\r\n\r\nx\r\n", NULL, &m), SUBMIT_MSG_OK, "%s", m.why);
	cr_assert_str_eq(submit_msg_kind(&m, "ann@example.test"), "to");
	cr_assert_str_eq(submit_msg_kind(&m, "bob@example.test"), "to");
	cr_assert_str_eq(submit_msg_kind(&m, "carl@example.test"), "to");
	cr_assert_str_eq(submit_msg_kind(&m, "friends@example.test"), "bcc");
	/* an unclosed quote or comment in one field does not swallow the next */
	cr_assert_str_eq(submit_msg_kind(&m, "eve@example.test"), "bcc");
	cr_assert_str_eq(submit_msg_kind(&m, "dan@example.test"), "bcc");
	submit_msg_cleanup(&m);
	/* The reader itself: each address once, normalized. */
	const char *list = "Ann <Ann@EXAMPLE.test>, undisclosed:;, \"j d\"@x.test (c), Team: <@r.test:b@y.test>;";
	const char *cur = list;
	char got[300];
	const char *want[] = { "Ann@example.test", "j d@x.test", "b@y.test" };
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(submit_msg_next_addr(&cur, got, sizeof(got)), 1, "%zu", i);
		cr_assert_str_eq(got, want[i]);
	}
	cr_assert_eq(submit_msg_next_addr(&cur, got, sizeof(got)), 0);
}
