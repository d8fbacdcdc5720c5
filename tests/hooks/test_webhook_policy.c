/*
 * Tests for the webhook retry policy (hooks/webhook_dispatch.c): the
 * schedule with jitter, Retry-After, exhaustion, 2xx/410/other outcomes;
 * and the endpoint URL rule (hooks/webhook_http.c).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "hooks/webhook_dispatch.h"
#include "hooks/webhook_http.h"
#include "util/config.h"

static struct schedule default_schedule(void)
{
	struct schedule s;
	cr_assert_eq(config_parse_schedule("5s,5m,30m,2h,5h,10h,14h,20h,24h", &s), 0);
	return s;
}

Test(webhook_policy, schedule_without_jitter)
{
	struct schedule s = default_schedule();
	static const double want[] = { 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400 };
	for (int i = 0; i < 9; i++)
		cr_assert_float_eq(webhook_retry_delay(&s, i + 1, -1, 0), want[i], 1e-9, "failure %d", i + 1);
	cr_assert_lt(webhook_retry_delay(&s, 10, -1, 0), 0, "the schedule is exhausted after 9 retries");
	cr_assert_lt(webhook_retry_delay(&s, 0, -1, 0), 0);
	/* All the retries together span about three days (INTERFACE.md). */
	double total = 0;
	for (int i = 1; i <= 9; i++)
		total += webhook_retry_delay(&s, i, -1, 0);
	cr_assert(total > 2.9 * 86400 && total < 3.3 * 86400, "total %f", total);
}

Test(webhook_policy, jitter_stays_within_ten_percent)
{
	struct schedule s = default_schedule();
	cr_assert_float_eq(webhook_retry_delay(&s, 2, -1, 1), 330, 1e-9);
	cr_assert_float_eq(webhook_retry_delay(&s, 2, -1, -1), 270, 1e-9);
	cr_assert_float_eq(webhook_retry_delay(&s, 2, -1, 7), 330, 1e-9, "jitter is clamped");
}

Test(webhook_policy, retry_after_is_a_minimum)
{
	struct schedule s = default_schedule();
	cr_assert_float_eq(webhook_retry_delay(&s, 1, 120, 0), 120, 1e-9, "Retry-After longer than 5 s wins");
	cr_assert_float_eq(webhook_retry_delay(&s, 3, 120, 0), 1800, 1e-9, "a shorter Retry-After does not hurry us");
	cr_assert_float_eq(webhook_retry_delay(&s, 1, 10L * 86400, 0), 86400, 1e-9, "capped at a day");
}

Test(webhook_policy, outcomes)
{
	struct schedule s;
	cr_assert_eq(config_parse_schedule("1s,1s", &s), 0);
	struct webhook_http_result r = { .kind = WEBHOOK_HTTP_RESPONSE, .status = 204, .retry_after = -1 };
	struct webhook_decision d;
	webhook_decide(&s, 0, &r, 0, &d);
	cr_assert_str_eq(d.status, "succeeded");
	r.status = 410;
	webhook_decide(&s, 0, &r, 0, &d);
	cr_assert_str_eq(d.status, "failed");
	cr_assert_eq(d.gone, 1);
	r.status = 500;
	webhook_decide(&s, 0, &r, 0, &d);
	cr_assert_str_eq(d.status, "pending");
	cr_assert_float_eq(d.delay, 1, 1e-9);
	webhook_decide(&s, 1, &r, 0, &d);
	cr_assert_str_eq(d.status, "pending");
	webhook_decide(&s, 2, &r, 0, &d);
	cr_assert_str_eq(d.status, "failed", "three attempts with a two-step schedule");
	cr_assert_eq(d.gone, 0);
	r.status = 301; /* redirects are not followed: a failed attempt */
	webhook_decide(&s, 0, &r, 0, &d);
	cr_assert_str_eq(d.status, "pending");
	struct webhook_http_result t = { .kind = WEBHOOK_HTTP_TIMEOUT, .retry_after = -1 };
	webhook_decide(&s, 0, &t, 0, &d);
	cr_assert_str_eq(d.status, "pending");
}

Test(webhook_policy, url_rule)
{
	char err[256];
	cr_assert_eq(webhook_url_check("https://hooks.example.com/mf", 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(webhook_url_check("http://hooks.example.com/mf", 0, err, sizeof(err)), -1);
	cr_assert_eq(webhook_url_check("http://127.0.0.1:9/x", 0, err, sizeof(err)), -1);
	cr_assert_eq(webhook_url_check("http://127.0.0.1:9/x", 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(webhook_url_check("http://10.1.2.3/x", 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(webhook_url_check("http://8.8.8.8/x", 1, err, sizeof(err)), -1, "http to a public host");
	cr_assert_eq(webhook_url_check("https://127.0.0.1/x", 0, err, sizeof(err)), -1);
	cr_assert_eq(webhook_url_check("https://2130706433/x", 0, err, sizeof(err)), -1);
	cr_assert_eq(webhook_url_check("https://[::ffff:127.0.0.1]/x", 0, err, sizeof(err)), -1);
	cr_assert_eq(webhook_url_check("https://169.254.169.254/latest", 1, err, sizeof(err)), -1);
	cr_assert_eq(webhook_url_check("https://localhost/x", 0, err, sizeof(err)), -1, "resolves to loopback");
	cr_assert(strstr(err, "loopback") != NULL, "%s", err);
	cr_assert_eq(webhook_url_check("https://localhost/x", 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(webhook_url_check("https://no-such-host.invalid/x", 0, err, sizeof(err)), 0,
		     "a name that does not resolve yet is accepted: %s", err);
	cr_assert_eq(webhook_url_check("ftp://example.com/", 1, err, sizeof(err)), -1);
	cr_assert_eq(webhook_url_check("not a url", 1, err, sizeof(err)), -1);
}
