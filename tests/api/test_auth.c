/*
 * Tests of api/auth.c without a database: api_authenticate() judges the
 * Authorization value alone when it is missing or malformed (the key store
 * is not asked), and the scope names round-trip.  Keys that reach the
 * database are covered by the integration tests (tests/integration/).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "api/auth.h"

static enum api_auth_status judge(const char *authorization)
{
	struct api_auth who = { .key_id = -7, .scopes = 99 };
	char err[128] = "";
	enum api_auth_status st = api_authenticate(NULL, authorization, API_SCOPE_SEND, &who, err, sizeof(err));
	cr_assert_eq(who.key_id, -7, "a refused key fills nothing");
	cr_assert_str_eq(err, "");
	return st;
}

Test(auth, missing_or_not_bearer_is_missing)
{
	cr_assert_eq(judge(NULL), AUTH_MISSING);
	cr_assert_eq(judge(""), AUTH_MISSING);
	cr_assert_eq(judge("Basic dXNlcjpwYXNz"), AUTH_MISSING);
	cr_assert_eq(judge("Bearer"), AUTH_MISSING);
}

Test(auth, malformed_key_is_invalid_without_the_store)
{
	cr_assert_eq(judge("Bearer "), AUTH_INVALID);
	cr_assert_eq(judge("Bearer sk_live_123"), AUTH_INVALID);
	cr_assert_eq(judge("bearer mf_short_secret"), AUTH_INVALID);
	cr_assert_eq(judge("Bearer mf_abcdefghijkl_"), AUTH_INVALID);
}

Test(auth, scopes_round_trip)
{
	unsigned s = 0;
	char out[64];
	cr_assert_eq(api_scopes_parse("send,admin", &s), 0);
	cr_assert_eq(s, API_SCOPE_SEND | API_SCOPE_ADMIN);
	api_scopes_format(s, out, sizeof(out));
	cr_assert_str_eq(out, "send,admin");
	cr_assert_eq(api_scopes_parse("send,root", &s), -1);
	cr_assert_eq(api_scopes_parse("", &s), -1);
}
