/* Tests for util/config.c: defaults, files, environment overrides, errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/config.h"

static char *write_conf(const char *text)
{
	char *path = strdup("/tmp/mfconf.XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void clear_env(void)
{
	unsetenv("MAILFERRY_WORKERS");
	unsetenv("MAILFERRY_HTTP_LISTEN");
	unsetenv("MAILFERRY_DATABASE_URL");
	unsetenv("MAILFERRY_SMARTHOST_PASSWORD");
}

TestSuite(config, .init = clear_env);

Test(config, defaults_match_interface)
{
	struct config c;
	char err[256];
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.http_listen, "127.0.0.1:8025");
	cr_assert_eq(c.workers, 1000);
	cr_assert_eq(c.destination_concurrency, 20);
	cr_assert_eq(c.smarthost_tls, TLS_MODE_STARTTLS);
	cr_assert_eq(c.tls_policy, TLS_POLICY_OPPORTUNISTIC);
	cr_assert_eq(c.tls_verify, 1);
	cr_assert_eq(c.max_queue_lifetime, 5 * 86400);
	cr_assert_eq(c.delivery_timeout, 30 * 60);
	cr_assert_eq(c.max_message_size, 10L * 1024 * 1024);
	cr_assert_eq(c.webhook_timeout, 15);
	cr_assert_eq(c.webhook_retry_schedule.n, 9);
	cr_assert_eq(c.webhook_retry_schedule.secs[0], 5);
	cr_assert_eq(c.webhook_retry_schedule.secs[8], 86400);
	cr_assert_eq(c.webhook_allow_private, 0);
	cr_assert_str_eq(c.log_level, "info");
	cr_assert_str_eq(c.log_format, "json");
	cr_assert_not_null(c.database_url);
	cr_assert_not_null(c.helo_name);
	config_cleanup(&c);
}

Test(config, file_values_and_comments)
{
	char *p = write_conf("# a comment\n\nworkers = 8\nhttp_listen=0.0.0.0:9000\n"
			     "retry_schedule = 1m, 2m ,1h\nmax_message_size = 512KiB\n"
			     "smarthost = mail.example.com:587\nsmarthost_tls = tls\ntls_verify = no\n"
			     "routes = example.com=127.0.0.1:2525,*=10.0.0.1:25\n");
	struct config c;
	char err[256];
	cr_assert_eq(config_load(&c, p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.workers, 8);
	cr_assert_str_eq(c.http_listen, "0.0.0.0:9000");
	cr_assert_eq(c.retry_schedule.n, 3);
	cr_assert_eq(c.retry_schedule.secs[2], 3600);
	cr_assert_eq(c.max_message_size, 512 * 1024);
	cr_assert_eq(c.smarthost_tls, TLS_MODE_IMPLICIT);
	cr_assert_eq(c.tls_verify, 0);
	cr_assert_str_eq(c.routes, "example.com=127.0.0.1:2525,*=10.0.0.1:25");
	config_cleanup(&c);
	unlink(p);
	free(p);
}

Test(config, environment_overrides_file)
{
	char *p = write_conf("workers = 8\n");
	setenv("MAILFERRY_WORKERS", "64", 1);
	struct config c;
	char err[256];
	cr_assert_eq(config_load(&c, p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.workers, 64);
	config_cleanup(&c);
	unlink(p);
	free(p);
}

Test(config, unknown_key_is_named)
{
	char *p = write_conf("workers = 8\nwokrers = 9\n");
	struct config c;
	char err[256];
	cr_assert_eq(config_load(&c, p, err, sizeof(err)), -1);
	cr_assert(strstr(err, "unknown key wokrers") != NULL, "%s", err);
	cr_assert(strstr(err, ":2") != NULL, "line number missing: %s", err);
	config_cleanup(&c);
	unlink(p);
	free(p);
}

Test(config, bad_values_are_named)
{
	static const char *cases[][2] = {
		{ "MAILFERRY_WORKERS", "abc" }, { "MAILFERRY_WORKERS", "0" }, { "MAILFERRY_WORKERS", "20001" },
		{ "MAILFERRY_HTTP_LISTEN", "nohost" }, { "MAILFERRY_TLS_POLICY", "sometimes" },
		{ "MAILFERRY_RETRY_SCHEDULE", "5m,,1h" }, { "MAILFERRY_MAX_MESSAGE_SIZE", "big" },
		{ "MAILFERRY_TLS_VERIFY", "maybe" }, { "MAILFERRY_ROUTES", "example.com" },
		{ "MAILFERRY_MAX_QUEUE_LIFETIME", "5 days" }, { "MAILFERRY_LOG_LEVEL", "loud" },
		{ "MAILFERRY_DELIVERY_TIMEOUT", "0" }, { "MAILFERRY_DESTINATION_RATE", "gmail.com=600" },
		{ "MAILFERRY_DESTINATION_RATE", "gmail.com=600/s" }, { "MAILFERRY_DESTINATION_RATE", "=5/min" },
		{ "MAILFERRY_DESTINATION_RATE", "a.test=-1/min" }, { "MAILFERRY_DESTINATION_RATE", "a.test=5/min,," },
		{ "MAILFERRY_DESTINATION_RATE", "a b.test=5/min" }, { "MAILFERRY_DESTINATION_RATE", "" },
		{ "MAILFERRY_DESTINATION_RATE", "a.test=9999999/min" }, { "MAILFERRY_DESTINATION_RATE", "*.test=1/min" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv(cases[i][0], cases[i][1], 1);
		struct config c;
		char err[256];
		cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), -1, "%s=%s accepted", cases[i][0], cases[i][1]);
		char key[64];
		snprintf(key, sizeof(key), "%s", cases[i][0] + strlen("MAILFERRY_"));
		for (char *k = key; *k; k++)
			*k = (char)(*k >= 'A' && *k <= 'Z' ? *k + 32 : *k);
		cr_assert(strstr(err, key) != NULL, "error does not name %s: %s", key, err);
		config_cleanup(&c);
		unsetenv(cases[i][0]);
	}
}

static void rate_item(const char *domain, size_t dlen, long per_min, void *arg)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%.*s:%ld", n ? "," : "", (int)dlen, domain, per_min);
}

Test(config, destination_rate_forms)
{
	char out[256] = "", why[256];
	cr_assert_eq(config_parse_rates("gmail.com=600/min,*=0", rate_item, out, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(out, "gmail.com:600,*:0");
	out[0] = '\0';
	cr_assert_eq(config_parse_rates(" a-b.example=5/min , *=30/min", rate_item, out, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(out, "a-b.example:5,*:30");
	cr_assert_eq(config_parse_rates("gmail.com=600/min,yahoo.com=fast", NULL, NULL, why, sizeof(why)), -1);
	cr_assert(strstr(why, "\"yahoo.com=fast\"") != NULL, "the bad item is quoted: %s", why);
	cr_assert(strstr(why, "gmail.com=600/min,*=0") != NULL, "an example is given: %s", why);
	setenv("MAILFERRY_DESTINATION_RATE", "gmail.com=600/min,*=0", 1);
	struct config c;
	char err[256];
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.destination_rate, "gmail.com=600/min,*=0");
	config_cleanup(&c);
	unsetenv("MAILFERRY_DESTINATION_RATE");
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(c.destination_rate, "unset by default: no rate limits");
	config_cleanup(&c);
}

/* workers is the session budget: up to MF_WORKERS_MAX, said in the error. */
Test(config, workers_bound)
{
	struct config c;
	char err[256];
	setenv("MAILFERRY_WORKERS", "20000", 1);
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.workers, 20000);
	config_cleanup(&c);
	setenv("MAILFERRY_WORKERS", "20001", 1);
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "from 1 to 20000") != NULL, "%s", err);
	config_cleanup(&c);
	unsetenv("MAILFERRY_WORKERS");
}

Test(config, domain_recheck_interval)
{
	struct config c;
	char err[256];
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.domain_recheck_interval, 86400, "24h by default");
	config_cleanup(&c);
	setenv("MAILFERRY_DOMAIN_RECHECK_INTERVAL", "1s", 1);
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.domain_recheck_interval, 1);
	config_cleanup(&c);
	setenv("MAILFERRY_DOMAIN_RECHECK_INTERVAL", "0", 1);
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "domain_recheck_interval") != NULL, "%s", err);
	config_cleanup(&c);
	unsetenv("MAILFERRY_DOMAIN_RECHECK_INTERVAL");
}

Test(config, durations_and_sizes)
{
	long v;
	cr_assert_eq(config_parse_duration("90", &v), 0);
	cr_assert_eq(v, 90);
	cr_assert_eq(config_parse_duration("1h30m", &v), 0);
	cr_assert_eq(v, 5400);
	cr_assert_eq(config_parse_duration("5d", &v), 0);
	cr_assert_eq(v, 432000);
	cr_assert_eq(config_parse_duration("", &v), -1);
	cr_assert_eq(config_parse_duration("5x", &v), -1);
	cr_assert_eq(config_parse_duration("-5", &v), -1);
	cr_assert_eq(config_parse_size("10MiB", &v), 0);
	cr_assert_eq(v, 10485760);
	cr_assert_eq(config_parse_size("10 M", &v), 0);
	cr_assert_eq(config_parse_size("1GB", &v), 0);
	cr_assert_eq(config_parse_size("x", &v), -1);
}

Test(config, hostport_forms)
{
	char host[64];
	int port;
	cr_assert_eq(config_parse_hostport("127.0.0.1:25", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 25);
	cr_assert_eq(config_parse_hostport("[::1]:2525", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(config_parse_hostport("host:99999", host, sizeof(host), &port), -1);
	cr_assert_eq(config_parse_hostport("host:", host, sizeof(host), &port), -1);
	cr_assert_eq(config_parse_hostport(":25", host, sizeof(host), &port), -1);
}

Test(config, print_redacts_secrets)
{
	setenv("MAILFERRY_SMARTHOST_PASSWORD", "hunter2", 1);
	setenv("MAILFERRY_DATABASE_URL", "postgresql://mf:s3cret@db.example.com/mailferry", 1);
	struct config c;
	char err[256];
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), 0, "%s", err);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	config_print(&c, f);
	fclose(f);
	cr_assert(strstr(out, "hunter2") == NULL);
	cr_assert(strstr(out, "s3cret") == NULL);
	cr_assert(strstr(out, "smarthost_password = ***") != NULL, "%s", out);
	cr_assert(strstr(out, "database_url = postgresql://mf:***@db.example.com/mailferry") != NULL, "%s", out);
	free(out);
	config_cleanup(&c);
}

static void server_item(const char *host, int port, void *arg)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%s/%d", n ? "," : "", host, port);
}

/* dns_servers: IP addresses, port 53 unless given; a host name is refused. */
Test(config, dns_servers_forms)
{
	char out[256] = "", why[256];
	cr_assert_eq(config_parse_servers("127.0.0.1:5353, 192.0.2.1,[::1]:54,::1", server_item, out, why,
					  sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(out, "127.0.0.1/5353,192.0.2.1/53,::1/54,::1/53");
	cr_assert_eq(config_parse_servers("127.0.0.1,ns1.example", NULL, NULL, why, sizeof(why)), -1);
	cr_assert(strstr(why, "\"ns1.example\"") != NULL, "the bad item is quoted: %s", why);
	setenv("MAILFERRY_DNS_SERVERS", "10.0.0.1:99x", 1);
	struct config c;
	char err[256];
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "dns_servers") != NULL, "%s", err);
	config_cleanup(&c);
	unsetenv("MAILFERRY_DNS_SERVERS");
	cr_assert_eq(config_load(&c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(c.dns_servers, "unset by default: resolv.conf");
	config_cleanup(&c);
}
