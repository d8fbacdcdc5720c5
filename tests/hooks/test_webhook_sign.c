/*
 * Tests for hooks/webhook_sign.c: the Standard Webhooks 1.0 published test
 * vector, agreement with an independent implementation (Python's hmac), the
 * secret format, and the two-signature header during a rotation.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "hooks/webhook_sign.h"
#include "util/base64.h"

/* From the standard-webhooks repository's tests and the reference
 * libraries (svix): secret, msg id, timestamp, payload, expected. */
Test(webhook_sign, standard_webhooks_test_vector)
{
	const char *body = "{\"test\": 2432232314}";
	char sig[WEBHOOK_SIG_LEN];
	cr_assert_eq(webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
				  1614265330, body, strlen(body), sig, sizeof(sig)), 0);
	cr_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* The prefix is optional, as in the reference implementations. */
	cr_assert_eq(webhook_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
				  strlen(body), sig, sizeof(sig)), 0);
	cr_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* One changed byte anywhere changes the signature. */
	cr_assert_eq(webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
				  1614265331, body, strlen(body), sig, sizeof(sig)), 0);
	cr_assert_str_neq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

Test(webhook_sign, bad_secret_is_refused)
{
	char sig[WEBHOOK_SIG_LEN];
	cr_assert_eq(webhook_sign("whsec_not*base64", "m", 1, "{}", 2, sig, sizeof(sig)), -1);
	cr_assert_eq(webhook_sign("whsec_", "m", 1, "{}", 2, sig, sizeof(sig)), -1);
}

Test(webhook_sign, secret_format)
{
	char a[WEBHOOK_SECRET_LEN], b[WEBHOOK_SECRET_LEN];
	unsigned char raw[64];
	cr_assert_eq(webhook_secret_new(a, sizeof(a)), 0);
	cr_assert_eq(webhook_secret_new(b, sizeof(b)), 0);
	cr_assert_eq(strncmp(a, "whsec_", 6), 0, "%s", a);
	cr_assert_eq(strlen(a), 6 + 44, "%s", a);
	cr_assert_eq(base64_decode(a + 6, strlen(a + 6), raw, sizeof(raw), 0), 32);
	cr_assert_str_neq(a, b);
}

/* Signs with Python's hmac/base64 (an independent implementation). */
static char *python_sign(const char *secret, const char *id, long ts, const char *bodyfile)
{
	char *out = NULL;
	int rc = th_run(&out,
			"python3 -c 'import sys,hmac,hashlib,base64\n"
			"k=base64.b64decode(sys.argv[1].split(\"_\",1)[1])\n"
			"b=open(sys.argv[4],\"rb\").read()\n"
			"m=sys.argv[2].encode()+b\".\"+sys.argv[3].encode()+b\".\"+b\n"
			"print(\"v1,\"+base64.b64encode(hmac.new(k,m,hashlib.sha256).digest()).decode())' '%s' '%s' %ld '%s'",
			secret, id, ts, bodyfile);
	if (rc != 0) {
		free(out);
		return NULL;
	}
	out[strcspn(out, "\n")] = '\0';
	return out;
}

Test(webhook_sign, agrees_with_python_hmac)
{
	const char *bodies[] = {
		"{}",
		"{\"id\": \"evt_1\", \"type\": \"message.delivered\", \"data\": {\"recipient\": \"r\\u00e9@example.com\"}}",
		"{\"text\": \"quotes \\\" and \\\\ and newline\\n and caf\xc3\xa9 \xe2\x9c\x93\"}",
	};
	char path[] = "/tmp/mf-whsig-XXXXXX";
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		char secret[WEBHOOK_SECRET_LEN], sig[WEBHOOK_SIG_LEN], id[32];
		cr_assert_eq(webhook_secret_new(secret, sizeof(secret)), 0);
		snprintf(id, sizeof(id), "evt_%zu", 1000 + i);
		memcpy(path, "/tmp/mf-whsig-XXXXXX", sizeof(path));
		int fd = mkstemp(path);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, bodies[i], strlen(bodies[i])), (ssize_t)strlen(bodies[i]));
		close(fd);
		long ts = 1700000000L + (long)i;
		cr_assert_eq(webhook_sign(secret, id, ts, bodies[i], strlen(bodies[i]), sig, sizeof(sig)), 0);
		char *py = python_sign(secret, id, ts, path);
		unlink(path);
		cr_assert_not_null(py, "python3 failed");
		cr_assert_str_eq(sig, py, "body %zu: ours %s, python %s", i, sig, py);
		free(py);
	}
}

Test(webhook_sign, rotation_header_carries_both_signatures)
{
	const char *body = "{\"test\": 2432232314}";
	const char *oldk = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
	char newk[WEBHOOK_SECRET_LEN], hdr[2 * WEBHOOK_SIG_LEN + 2], one[WEBHOOK_SIG_LEN], expect[2 * WEBHOOK_SIG_LEN + 2];
	cr_assert_eq(webhook_secret_new(newk, sizeof(newk)), 0);
	cr_assert_eq(webhook_signature_header(newk, oldk, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
					      strlen(body), hdr, sizeof(hdr)), 0);
	cr_assert_eq(webhook_sign(newk, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), one,
				  sizeof(one)), 0);
	snprintf(expect, sizeof(expect), "%s v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", one);
	cr_assert_str_eq(hdr, expect);
	cr_assert_eq(webhook_signature_header(newk, NULL, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
					      strlen(body), hdr, sizeof(hdr)), 0);
	cr_assert_str_eq(hdr, one);
}
