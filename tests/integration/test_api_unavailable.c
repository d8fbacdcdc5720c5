/*
 * Integration test: the database stops while the API runs.  Sends are
 * answered 503 "unavailable" (nothing half-written: every stored message
 * has all its recipients and events), reads too; after PostgreSQL returns
 * the API accepts again without a restart.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"

#define BODY "{\"from\":\"a@shop.example\",\"to\":[\"b@example.net\",\"c@example.org\"],\"text\":\"x\"}"

Test(api_unavailable, database_down_503_and_no_partial_rows)
{
	char *dir = th_tmpdir("apidown");
	cr_assert_not_null(dir);
	char *url = th_cluster_start(dir);
	cr_assert_not_null(url);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s migrate", url, th_bin()), 0, "%s", out);
	free(out);
	struct api_srv s;
	api_srv_start(&s, url, NULL);
	free(api_send_ok(&s, BODY));

	cr_assert_eq(th_cluster_stop(dir), 0);
	struct th_http r;
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL, BODY, &r), 0);
		cr_assert_eq(r.status, 503, "%s", r.body);
		cr_assert(strstr(r.body, "\"code\":\"unavailable\""), "%s", r.body);
		th_http_free(&r);
	}
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch", NULL, NULL, "{\"messages\":[" BODY "," BODY "]}", &r), 0);
	cr_assert_eq(r.status, 503, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/messages", NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 503, "%s", r.body);
	th_http_free(&r);

	char *again = th_cluster_start(dir);
	cr_assert_not_null(again);
	free(again);
	/* Exactly the message accepted before the outage, whole. */
	cr_assert_eq(t_count(url, "SELECT count(*) FROM messages"), 1);
	cr_assert_eq(t_count(url, "SELECT count(*) FROM recipients"), 2);
	cr_assert_eq(t_count(url, "SELECT count(*) FROM events"), 2);
	cr_assert_eq(t_count(url, "SELECT count(*) FROM messages m WHERE NOT EXISTS"
				  " (SELECT 1 FROM recipients r WHERE r.message_id = m.id)"), 0);
	/* And the API recovers by itself. */
	long status = 0;
	for (int i = 0; i < 100 && status != 202; i++) {
		cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL, BODY, &r), 0);
		status = r.status;
		th_http_free(&r);
		if (status != 202)
			usleep(100000);
	}
	cr_assert_eq(status, 202);
	cr_assert_eq(t_count(url, "SELECT count(*) FROM messages"), 2);
	cr_assert_eq(t_count(url, "SELECT count(*) FROM recipients"), 4);
	api_srv_stop(&s, 0);
	th_cluster_stop(dir);
	th_rmrf(dir);
	free(dir);
	free(url);
}
