/*
 * Tests of the webhook HTTP client (hooks/webhook_http.c) against a real
 * DNS path: webhook_http_post() resolves the URL's host once, checks the
 * addresses and pins them for the request (CURLOPT_RESOLVE), so a DNS
 * answer that changes between the check and the connect (DNS rebinding)
 * cannot send the request elsewhere.
 *
 * The name is served by tests/harness/dns_stub.c, whose answer moves on
 * with every query: 127.0.0.1 (receiver A) first, 127.0.0.2 (receiver B)
 * after.  getaddrinfo() reads /etc/resolv.conf, so the test process moves
 * into a private mount namespace and bind-mounts a resolv.conf naming the
 * stub over it there; the machine's own file is untouched.  That needs
 * root, which the test run has (CI runs as root).
 */
#include <criterion/criterion.h>
#include <netdb.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>

#include "dns_stub.h"
#include "harness.h"
#include "hooks/webhook_http.h"
#include "wh_receiver.h"

/* A stub on port 53 of some 127.53.x.y (resolv.conf names no port). */
static struct dns_stub *stub_on_53(char *ip, size_t iplen)
{
	unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (int i = 0; i < 50; i++) {
		unsigned v = (seed + (unsigned)i * 7919u) % 65000u + 1;
		snprintf(ip, iplen, "127.53.%u.%u", v >> 8, v & 0xff);
		struct dns_stub *d = dns_stub_start_at(NULL, 0, ip, 53);
		if (d)
			return d;
	}
	return NULL;
}

/* This process, and the threads it starts from now on, resolve through
 * ip: a private mount namespace with its own /etc/resolv.conf. */
static void resolve_through(const char *ip, const char *dir)
{
	cr_assert_eq(geteuid(), 0, "this test needs root (a mount namespace); the test run is root in CI");
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare(CLONE_NEWNS): %m");
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "mount private: %m");
	char path[512];
	snprintf(path, sizeof(path), "%s/resolv.conf", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "nameserver %s\noptions timeout:2 attempts:2\n", ip);
	fclose(f);
	cr_assert_eq(mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL), 0, "bind-mount resolv.conf: %m");
}

/* The first IPv4 address getaddrinfo() gives for host, into out. */
static int lookup(const char *host, char *out, size_t n)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
		return -1;
	inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, out, (socklen_t)n);
	freeaddrinfo(res);
	return 0;
}

Test(webhook_http, pins_the_checked_address_against_dns_rebinding)
{
	char *dir = th_tmpdir("rebind");
	cr_assert_not_null(dir);
	char ip[32];
	struct dns_stub *dns = stub_on_53(ip, sizeof(ip));
	cr_assert_not_null(dns, "no 127.53.x.y:53 to listen on");
	static const char *const answers[] = { "127.0.0.1", "127.0.0.2" };
	dns_stub_set_a(dns, "rebind.test", answers, 2);
	resolve_through(ip, dir);

	/* Receiver A where the first answer points, B where the second does,
	 * on the same port (the URL has one). */
	struct th_receiver *a = NULL, *b = NULL;
	for (int i = 0; i < 10 && b == NULL; i++) {
		th_receiver_free(a);
		a = th_receiver_start_at("200", "127.0.0.1", 0);
		cr_assert_not_null(a);
		b = th_receiver_start_at("200", "127.0.0.2", th_receiver_port(a));
	}
	cr_assert_not_null(b, "no port free on both 127.0.0.1 and 127.0.0.2");

	char url[128];
	snprintf(url, sizeof(url), "http://rebind.test:%d/hook", th_receiver_port(a));
	static const char body[] = "{\"type\":\"message.delivered\"}";
	struct webhook_http_req req = {
		.url = url,
		.msg_id = "evt_1",
		.timestamp = (long)time(NULL),
		.signature = "v1,AAAA",
		.body = body,
		.bodylen = sizeof(body) - 1,
		.timeout = 10,
		.allow_private = 1,
	};
	struct webhook_http_result res;
	int rc = webhook_http_post(&req, &res);
	cr_assert_eq(rc, 0, "no answer: %s", res.error);
	cr_assert_eq(res.status, 200);
	cr_assert_eq(th_receiver_requests(a), 1, "the request went to the checked address");
	cr_assert_eq(th_receiver_requests(b), 0, "the request followed a second DNS answer");
	cr_assert_eq(dns_stub_a_queries(dns), 1, "the host was resolved %d times", dns_stub_a_queries(dns));

	/* And the trap was real: the next lookup does point elsewhere. */
	char now[64];
	cr_assert_eq(lookup("rebind.test", now, sizeof(now)), 0);
	cr_assert_str_eq(now, "127.0.0.2");

	th_receiver_free(a);
	th_receiver_free(b);
	dns_stub_stop(dns);
	th_rmrf(dir);
	free(dir);
}

/* The check reads the same DNS: a name that resolves to loopback is
 * refused when private addresses are not allowed, and nothing is sent. */
Test(webhook_http, refuses_a_name_that_resolves_to_loopback)
{
	char *dir = th_tmpdir("rebind");
	cr_assert_not_null(dir);
	char ip[32];
	struct dns_stub *dns = stub_on_53(ip, sizeof(ip));
	cr_assert_not_null(dns, "no 127.53.x.y:53 to listen on");
	static const char *const answers[] = { "127.0.0.1" };
	dns_stub_set_a(dns, "inside.test", answers, 1);
	resolve_through(ip, dir);
	struct th_receiver *a = th_receiver_start_at("200", "127.0.0.1", 0);
	cr_assert_not_null(a);
	char url[128];
	snprintf(url, sizeof(url), "https://inside.test:%d/hook", th_receiver_port(a));
	struct webhook_http_req req = { .url = url, .msg_id = "evt_1", .timestamp = (long)time(NULL),
					.signature = "v1,AAAA", .body = "{}", .bodylen = 2, .timeout = 10 };
	struct webhook_http_result res;
	cr_assert_eq(webhook_http_post(&req, &res), -1);
	cr_assert_eq(res.kind, WEBHOOK_HTTP_REFUSED, "%d %s", res.kind, res.error);
	cr_assert(strstr(res.error, "not allowed") != NULL, "%s", res.error);
	cr_assert_geq(dns_stub_a_queries(dns), 1, "the stub was not asked");
	cr_assert_eq(th_receiver_requests(a), 0);
	th_receiver_free(a);
	dns_stub_stop(dns);
	th_rmrf(dir);
	free(dir);
}
