/*
 * relay/sts_policy.c: the _mta-sts TXT record (RFC 8461 §3.1), the policy
 * file (§3.2) and MX pattern matching (§4.1).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "relay/sts_policy.h"

Test(sts_policy, txt_record)
{
	char id[STS_ID_MAX + 1];
	cr_assert_eq(sts_txt_parse("v=STSv1; id=20160831085700Z;", id), 0);
	cr_assert_str_eq(id, "20160831085700Z");
	cr_assert_eq(sts_txt_parse("v=STSv1;id=abc", id), 0);
	cr_assert_str_eq(id, "abc");
	cr_assert_eq(sts_txt_parse("v=STSv1; ext=1; id=x1 ;", id), 0);
	cr_assert_str_eq(id, "x1");
	cr_assert_eq(sts_txt_parse("v=spf1 -all", id), 1, "not an STS record");
	cr_assert_eq(sts_txt_parse("v=STSv10; id=1", id), 1);
	cr_assert_eq(sts_txt_parse("v=STSv1;", id), -1, "no id");
	cr_assert_eq(sts_txt_parse("v=STSv1; id=has-dash", id), -1);
	cr_assert_eq(sts_txt_parse("v=STSv1; id=123456789012345678901234567890123", id), -1, "33 chars");
}

Test(sts_policy, policy_file)
{
	static const char text[] = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
				   "mx: *.Example.NET\r\nmx: backupmx.example.com.\r\nmax_age: 604800\r\n";
	struct sts_policy p;
	char why[128];
	cr_assert_eq(sts_policy_parse(text, strlen(text), &p, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(p.mode, STS_MODE_ENFORCE);
	cr_assert_eq(p.max_age, 604800);
	cr_assert_eq(p.nmx, 3);
	cr_assert_str_eq(p.mx[1], "*.example.net");
	cr_assert_str_eq(p.mx[2], "backupmx.example.com");
	cr_assert(sts_mx_match(&p, "mail.example.com"));
	cr_assert(sts_mx_match(&p, "MAIL.example.com."));
	cr_assert(sts_mx_match(&p, "mx1.example.net"));
	cr_assert(!sts_mx_match(&p, "a.b.example.net"), "the wildcard is one label (§4.1)");
	cr_assert(!sts_mx_match(&p, "example.net"));
	cr_assert(!sts_mx_match(&p, "evil.example.org"));

	/* LF line ends, unknown keys, a large max_age capped. */
	static const char lf[] = "version: STSv1\nmode: testing\nfoo: bar\nmx: a.test\nmax_age: 99999999999\n";
	cr_assert_eq(sts_policy_parse(lf, strlen(lf), &p, why, sizeof(why)), -1, "11 digits");
	static const char lf2[] = "version: STSv1\nmode: testing\nfoo: bar\nmx: a.test\nmax_age: 9999999999\n";
	cr_assert_eq(sts_policy_parse(lf2, strlen(lf2), &p, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(p.mode, STS_MODE_TESTING);
	cr_assert_eq(p.max_age, STS_MAX_AGE_MAX);
	static const char none[] = "version: STSv1\nmode: none\nmax_age: 86400\n";
	cr_assert_eq(sts_policy_parse(none, strlen(none), &p, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(sts_mode_name(p.mode), "none");
}

Test(sts_policy, bad_policies)
{
	struct {
		const char *text, *why;
	} cases[] = {
		{ "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n", "STSv1" },
		{ "mode: enforce\nmx: a.test\nmax_age: 1\n", "lacks version" },
		{ "version: STSv1\nmx: a.test\nmax_age: 1\n", "lacks mode" },
		{ "version: STSv1\nmode: enforce\nmx: a.test\n", "lacks max_age" },
		{ "version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx" },
		{ "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n", "strict" },
		{ "version: STSv1\nmode: enforce\nmx: a test\nmax_age: 1\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: a..\nmax_age: 5\n", "mx" }, /* found by fuzz_sts_policy */
		{ "version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 5\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: .a\nmax_age: 5\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: *..a\nmax_age: 5\n", "mx" },
		{ "<html>not a policy</html>\n", "not key: value" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sts_policy p;
		char why[128] = "";
		cr_assert_eq(sts_policy_parse(cases[i].text, strlen(cases[i].text), &p, why, sizeof(why)), -1,
			     "accepted: %s", cases[i].text);
		cr_assert(strstr(why, cases[i].why) != NULL, "%s: %s", cases[i].text, why);
	}
}
