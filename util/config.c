/*
 * config.c - configuration loading (see config.h).
 *
 * One table describes every key: its name, its type, where it lives in
 * struct config, its default, and whether it is a secret.  Loading, the
 * environment overrides and config_print() all walk that table, so adding a
 * key is one line.
 */
#include "util/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/limits.h"
#include "util/log.h"
#include "util/xmalloc.h"

enum ctype { C_STR, C_INT, C_BOOL, C_DURATION, C_SIZE, C_SCHEDULE, C_HOSTPORT,
	     C_SMARTHOST_TLS, C_TLS_POLICY, C_SENDER_POLICY, C_LOGLEVEL, C_LOGFORMAT, C_ROUTES, C_ROLES, C_RATES, C_SERVERS };

struct ckey {
	const char *name;
	enum ctype type;
	size_t off;
	const char *def; /* NULL: unset */
	int secret;
};

#define K(n, t, d, s) { #n, t, offsetof(struct config, n), d, s }
static const struct ckey keys[] = {
	K(database_url, C_STR, NULL, 1),
	K(http_listen, C_HOSTPORT, "127.0.0.1:8025", 0),
	K(http_threads, C_INT, "4", 0),
	K(admin_listen, C_HOSTPORT, NULL, 0),
	K(http_connections_per_address, C_INT, "256", 0),
	K(http_header_timeout, C_DURATION, "10s", 0),
	K(db_pool_size, C_INT, "16", 0),
	K(workers, C_INT, "1000", 0),
	K(helo_name, C_STR, NULL, 0),
	K(smarthost, C_HOSTPORT, NULL, 0),
	K(smarthost_user, C_STR, NULL, 0),
	K(smarthost_password, C_STR, NULL, 1),
	K(smarthost_tls, C_SMARTHOST_TLS, "starttls", 0),
	K(routes, C_ROUTES, NULL, 0),
	K(tls_policy, C_TLS_POLICY, "opportunistic", 0),
	K(tls_verify, C_BOOL, "yes", 0),
	K(tls_ca_file, C_STR, NULL, 0),
	K(retry_schedule, C_SCHEDULE, "5m,10m,20m,40m,1h20m,2h40m,4h", 0),
	K(max_queue_lifetime, C_DURATION, "5d", 0),
	K(delivery_timeout, C_DURATION, "30m", 0),
	K(max_message_size, C_SIZE, "10MiB", 0),
	K(bounce_domain, C_STR, NULL, 0),
	K(bounce_listen, C_HOSTPORT, NULL, 0),
	K(bounce_tls_cert, C_STR, NULL, 0),
	K(bounce_tls_key, C_STR, NULL, 0),
	K(dkim_domain, C_STR, NULL, 0),
	K(dkim_selector, C_STR, NULL, 0),
	K(dkim_key_file, C_STR, NULL, 0),
	K(master_key_file, C_STR, NULL, 0),
	K(sender_policy, C_SENDER_POLICY, "any", 0),
	K(webhook_timeout, C_DURATION, "15", 0),
	K(webhook_retry_schedule, C_SCHEDULE, "5s,5m,30m,2h,5h,10h,14h,20h,24h", 0),
	K(webhook_allow_private, C_BOOL, "no", 0),
	K(log_level, C_LOGLEVEL, "info", 0),
	K(log_format, C_LOGFORMAT, "json", 0),
	K(log_recipients, C_BOOL, "no", 0),
	K(console, C_BOOL, "yes", 0),
	K(roles, C_ROLES, "api,delivery,webhooks,bounces", 0),
	K(shutdown_grace, C_DURATION, "10s", 0),
	K(body_retention, C_DURATION, "30d", 0),
	K(event_retention, C_DURATION, "90d", 0),
	K(capture_dir, C_STR, NULL, 0),
	K(lease_time, C_DURATION, "10m", 0),
	K(destination_concurrency, C_INT, "20", 0),
	K(destination_rate, C_RATES, NULL, 0),
	K(submission_listen, C_HOSTPORT, NULL, 0),
	K(submission_tls, C_SMARTHOST_TLS, "starttls", 0),
	K(submission_tls_cert_file, C_STR, NULL, 0),
	K(submission_tls_key_file, C_STR, NULL, 0),
	K(submission_allow_plaintext_auth, C_BOOL, "no", 0),
	K(submission_command_timeout, C_DURATION, "60s", 0),
	K(submission_greet_wait, C_DURATION, "0", 0),
	K(dns_servers, C_SERVERS, NULL, 0),
	K(mta_sts, C_BOOL, "yes", 0),
	K(domain_recheck_interval, C_DURATION, "24h", 0),
};
#undef K
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *smarthost_tls_names[] = { "starttls", "tls", "none" };
static const char *tls_policy_names[] = { "opportunistic", "required", "none" };
static const char *sender_policy_names[] = { "any", "known", "verified" };
static const char *role_names[] = { "api", "delivery", "webhooks", "bounces" };

static int parse_enum(const char *s, const char **names, int n, int *out)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

/* Parses "<n><unit>" pieces: 90, 90s, 5m, 1h30m, 5d, 2w.  Bare = seconds. */
int config_parse_duration(const char *s, long *secs)
{
	long total = 0;
	const char *p = s;
	if (*p == '\0')
		return -1;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return -1;
		errno = 0;
		char *end;
		long v = strtol(p, &end, 10);
		if (errno || v < 0)
			return -1;
		long mul = 1;
		switch (*end) {
		case '\0': mul = 1; break;
		case 's': mul = 1; end++; break;
		case 'm': mul = 60; end++; break;
		case 'h': mul = 3600; end++; break;
		case 'd': mul = 86400; end++; break;
		case 'w': mul = 7 * 86400; end++; break;
		default: return -1;
		}
		if (v > LONG_MAX / mul || total > LONG_MAX - v * mul)
			return -1;
		total += v * mul;
		p = end;
	}
	*secs = total;
	return 0;
}

int config_parse_size(const char *s, long *bytes)
{
	errno = 0;
	char *end;
	if (!isdigit((unsigned char)*s))
		return -1;
	long v = strtol(s, &end, 10);
	if (errno || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	long mul = 1;
	if (*end == '\0' || strcmp(end, "B") == 0)
		mul = 1;
	else if (strchr("kK", *end) && (!end[1] || !strcmp(end + 1, "B") || !strcmp(end + 1, "iB")))
		mul = 1024;
	else if (*end == 'M' && (!end[1] || !strcmp(end + 1, "B") || !strcmp(end + 1, "iB")))
		mul = 1024L * 1024;
	else if (*end == 'G' && (!end[1] || !strcmp(end + 1, "B") || !strcmp(end + 1, "iB")))
		mul = 1024L * 1024 * 1024;
	else
		return -1;
	if (v > LONG_MAX / mul)
		return -1;
	*bytes = v * mul;
	return 0;
}

int config_parse_schedule(const char *s, struct schedule *out)
{
	struct schedule sch = { 0 };
	const char *p = s;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char item[64];
		while (n && *p == ' ')
			p++, n--;
		while (n && p[n - 1] == ' ')
			n--;
		if (n == 0 || n >= sizeof(item) || sch.n == MF_SCHEDULE_MAX)
			return -1;
		memcpy(item, p, n);
		item[n] = '\0';
		if (config_parse_duration(item, &sch.secs[sch.n]) < 0 || sch.secs[sch.n] == 0)
			return -1;
		sch.n++;
		if (!comma)
			break;
		p = comma + 1;
		if (*p == '\0')
			return -1;
	}
	if (sch.n == 0)
		return -1;
	*out = sch;
	return 0;
}

int config_parse_hostport(const char *s, char *host, size_t hostsz, int *port)
{
	const char *colon;
	const char *h = s;
	size_t hlen;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= hostsz)
		return -1;
	for (size_t i = 0; i < hlen; i++)
		if (isspace((unsigned char)h[i]) || h[i] == '/' || h[i] == ',')
			return -1;
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || *end || colon[1] == '\0' || p < 0 || p > 65535)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return 0;
}

/* routes = domain=host:port,... where domain may be '*'. */
static int check_routes(const char *s, char *why, size_t whylen)
{
	char *copy = xstrdup(s);
	int rc = 0;
	char *save = NULL;
	for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
		while (*it == ' ')
			it++;
		char *eq = strchr(it, '=');
		char host[256];
		int port;
		if (!eq || eq == it || config_parse_hostport(eq + 1, host, sizeof(host), &port) < 0) {
			snprintf(why, whylen, "route \"%s\" is not domain=host:port", it);
			rc = -1;
			break;
		}
	}
	free(copy);
	return rc;
}

/* The next item of a comma-separated list at *pp, spaces trimmed: its
 * start, with its length in *n, or NULL after the last; *pp moves past it
 * (NULL after the last item). */
static const char *list_next(const char **pp, size_t *n)
{
	const char *p = *pp;
	if (p == NULL || *p == '\0')
		return NULL;
	const char *comma = strchr(p, ',');
	*n = comma ? (size_t)(comma - p) : strlen(p);
	*pp = comma ? comma + 1 : NULL;
	while (*n && *p == ' ')
		p++, (*n)--;
	while (*n && p[*n - 1] == ' ')
		(*n)--;
	return p;
}

/*
 * destination_rate = domain=N/min,...: a domain (or '*' for every other
 * one) and a rate in jobs per minute; 0 (or a bare "=0") means no limit.  Calls fn (may be
 * NULL: only checks) for each item.  The first bad item is quoted in why.
 */
int config_parse_rates(const char *s, config_rate_fn fn, void *arg, char *why, size_t whylen)
{
	const char *next = s, *p;
	size_t n;
	int any = 0;
	while ((p = list_next(&next, &n)) != NULL) {
		const char *eq = memchr(p, '=', n);
		const char *slash = eq ? memchr(eq, '/', n - (size_t)(eq - p)) : NULL;
		size_t dlen = eq ? (size_t)(eq - p) : 0;
		/* "=0" alone is "no limit" too (the unit says nothing then). */
		int bare0 = eq && slash == NULL && (size_t)(p + n - eq) == 2 && eq[1] == '0';
		if (bare0)
			slash = eq + 2;
		int ok = eq && slash && dlen > 0 && dlen <= MF_DOMAIN_MAX && slash > eq + 1 &&
			 (bare0 || ((size_t)(p + n - slash) == 4 && memcmp(slash, "/min", 4) == 0));
		long v = 0;
		for (const char *d = eq ? eq + 1 : p; ok && d < slash; d++) {
			if (!isdigit((unsigned char)*d) || v > 1000000) {
				ok = 0;
				break;
			}
			v = v * 10 + (*d - '0');
		}
		if (ok && v > 1000000)
			ok = 0;
		for (size_t i = 0; ok && i < dlen; i++)
			if (!(isalnum((unsigned char)p[i]) || p[i] == '.' || p[i] == '-' || (p[i] == '*' && dlen == 1)))
				ok = 0;
		if (!ok) {
			snprintf(why, whylen, "item \"%.*s\" is not domain=N/min (N from 0 to 1000000; '*' for every"
				 " other domain; 0 for no limit), e.g. gmail.com=600/min,*=0", (int)(n > 100 ? 100 : n), p);
			return -1;
		}
		if (fn)
			fn(p, dlen, v, arg);
		any = 1;
	}
	if (!any) {
		snprintf(why, whylen, "no item; e.g. gmail.com=600/min,*=0");
		return -1;
	}
	return 0;
}

/*
 * dns_servers = host[:port],...: IP addresses of DNS servers, port 53 unless
 * given ("[v6]:port" when IPv6 has a port; a bare IPv6 address takes 53).
 * Calls fn (may be NULL: only checks) for each.  At most 8 items.
 */
int config_parse_servers(const char *s, config_server_fn fn, void *arg, char *why, size_t whylen)
{
	const char *next = s, *p;
	size_t n;
	int count = 0;
	while ((p = list_next(&next, &n)) != NULL) {
		char item[80], host[80];
		int port = 53, ok = n > 0 && n < sizeof(item);
		if (ok) {
			memcpy(item, p, n);
			item[n] = '\0';
			unsigned char a[16];
			if (inet_pton(AF_INET, item, a) == 1 || inet_pton(AF_INET6, item, a) == 1)
				snprintf(host, sizeof(host), "%s", item);
			else
				ok = config_parse_hostport(item, host, sizeof(host), &port) == 0 && port > 0 &&
				     (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1);
		}
		if (ok && ++count > 8) {
			snprintf(why, whylen, "at most 8 servers");
			return -1;
		}
		if (!ok) {
			snprintf(why, whylen, "item \"%.*s\" is not ip[:port] (an IP address, [v6]:port for IPv6"
				 " with a port), e.g. 127.0.0.1:5353,[::1]:53", (int)(n > 60 ? 60 : n), p);
			return -1;
		}
		if (fn)
			fn(host, port, arg);
	}
	if (count == 0) {
		snprintf(why, whylen, "no server; e.g. 127.0.0.1:5353 (leave unset for /etc/resolv.conf)");
		return -1;
	}
	return 0;
}

static int check_roles(const char *s)
{
	char *copy = xstrdup(s);
	int rc = 0, any = 0, dummy;
	char *save = NULL;
	for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
		if (parse_enum(it, role_names, 4, &dummy) < 0)
			rc = -1;
		any = 1;
	}
	free(copy);
	return any ? rc : -1;
}

static char **str_slot(struct config *cfg, const struct ckey *k)
{
	return (char **)((char *)cfg + k->off);
}

/* Sets one key from its text form; on error writes why into err. */
static int set_key(struct config *cfg, const struct ckey *k, const char *v, const char *origin,
		   char *err, size_t errlen)
{
	void *slot = (char *)cfg + k->off;
	char why[200] = "";
	int ok = 0, iv;
	long lv;
	enum mf_log_level lvl;
	char host[256];

	switch (k->type) {
	case C_STR:
		ok = 1;
		break;
	case C_INT: {
		char *end;
		errno = 0;
		lv = strtol(v, &end, 10);
		long max = strcmp(k->name, "workers") == 0 ? MF_WORKERS_MAX : 100000;
		ok = *v && !*end && !errno && lv > 0 && lv <= max;
		if (ok)
			*(int *)slot = (int)lv;
		else
			snprintf(why, sizeof(why), "must be a whole number from 1 to %ld", max);
		break;
	}
	case C_BOOL:
		if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
			*(int *)slot = 1, ok = 1;
		else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
			*(int *)slot = 0, ok = 1;
		else
			snprintf(why, sizeof(why), "must be yes or no");
		break;
	case C_DURATION:
		ok = config_parse_duration(v, &lv) == 0;
		if (ok)
			*(long *)slot = lv;
		else
			snprintf(why, sizeof(why), "must be a duration such as 30s, 5m, 2h or 5d");
		break;
	case C_SIZE:
		ok = config_parse_size(v, &lv) == 0 && lv > 0;
		if (ok)
			*(long *)slot = lv;
		else
			snprintf(why, sizeof(why), "must be a size such as 10485760, 512KiB or 10MiB");
		break;
	case C_SCHEDULE:
		ok = config_parse_schedule(v, slot) == 0;
		if (!ok)
			snprintf(why, sizeof(why), "must be a comma-separated list of durations, e.g. 5m,10m,1h");
		break;
	case C_HOSTPORT:
		ok = config_parse_hostport(v, host, sizeof(host), &iv) == 0;
		if (!ok)
			snprintf(why, sizeof(why), "must be host:port");
		break;
	case C_SMARTHOST_TLS:
		ok = parse_enum(v, smarthost_tls_names, 3, &iv) == 0;
		if (ok)
			*(enum tls_mode *)slot = (enum tls_mode)iv;
		else
			snprintf(why, sizeof(why), "must be starttls, tls or none");
		break;
	case C_TLS_POLICY:
		ok = parse_enum(v, tls_policy_names, 3, &iv) == 0;
		if (ok)
			*(enum tls_policy *)slot = (enum tls_policy)iv;
		else
			snprintf(why, sizeof(why), "must be opportunistic, required or none");
		break;
	case C_SENDER_POLICY:
		ok = parse_enum(v, sender_policy_names, 3, &iv) == 0;
		if (ok)
			*(enum sender_policy *)slot = (enum sender_policy)iv;
		else
			snprintf(why, sizeof(why), "must be any, known or verified");
		break;
	case C_LOGLEVEL:
		ok = log_level_parse(v, &lvl) == 0;
		if (!ok)
			snprintf(why, sizeof(why), "must be debug, info, warn or error");
		break;
	case C_LOGFORMAT:
		ok = !strcmp(v, "json") || !strcmp(v, "text");
		if (!ok)
			snprintf(why, sizeof(why), "must be json or text");
		break;
	case C_ROUTES:
		ok = check_routes(v, why, sizeof(why)) == 0;
		break;
	case C_RATES:
		ok = config_parse_rates(v, NULL, NULL, why, sizeof(why)) == 0;
		break;
	case C_SERVERS:
		ok = config_parse_servers(v, NULL, NULL, why, sizeof(why)) == 0;
		break;
	case C_ROLES:
		ok = check_roles(v) == 0;
		if (!ok)
			snprintf(why, sizeof(why), "must be a comma-separated subset of api,delivery,webhooks,bounces");
		break;
	}
	if (!ok) {
		snprintf(err, errlen, "%s: invalid value for %s (\"%s\"): %s", origin, k->name, v, why);
		return -1;
	}
	if (k->type == C_STR || k->type == C_HOSTPORT || k->type == C_LOGLEVEL ||
	    k->type == C_LOGFORMAT || k->type == C_ROUTES || k->type == C_ROLES || k->type == C_RATES ||
	    k->type == C_SERVERS) {
		char **sp = str_slot(cfg, k);
		free(*sp);
		*sp = xstrdup(v);
	}
	return 0;
}

static const struct ckey *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	char line[MF_CONFIG_LINE_MAX];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		char origin[300];
		snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s: line too long", origin);
			rc = -1;
			break;
		}
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s: expected key = value", origin);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *k = trim(s), *v = trim(eq + 1);
		const struct ckey *key = find_key(k);
		if (!key) {
			snprintf(err, errlen, "%s: unknown key %s", origin, k);
			rc = -1;
			break;
		}
		rc = set_key(cfg, key, v, origin, err, errlen);
	}
	fclose(f);
	return rc;
}

/* MAILFERRY_<KEY>: the environment variable that overrides key. */
static void env_name(const struct ckey *key, char *out, size_t outsz)
{
	size_t o = (size_t)snprintf(out, outsz, "MAILFERRY_");
	for (const char *p = key->name; *p && o + 1 < outsz; p++)
		out[o++] = (char)toupper((unsigned char)*p);
	out[o] = '\0';
}

/*
 * MAILFERRY_ variables that name no key but are read on purpose: the API
 * key of "mailferry send", and those tests/run.sh sets for the test suite
 * (MAILFERRY_BIN, MAILFERRY_TEST_*).  A trailing '*' matches a prefix.
 */
static const char *const env_not_keys[] = { "MAILFERRY_API_KEY", "MAILFERRY_BIN", "MAILFERRY_TEST_*" };

static int env_known(const char *var, size_t n)
{
	char name[80];
	for (size_t i = 0; i < NKEYS; i++) {
		env_name(&keys[i], name, sizeof(name));
		if (strlen(name) == n && memcmp(name, var, n) == 0)
			return 1;
	}
	for (size_t i = 0; i < sizeof(env_not_keys) / sizeof(env_not_keys[0]); i++) {
		const char *a = env_not_keys[i];
		size_t an = strlen(a);
		if (a[an - 1] == '*' ? n >= an - 1 && memcmp(a, var, an - 1) == 0 : an == n && memcmp(a, var, n) == 0)
			return 1;
	}
	return 0;
}

/* An unknown MAILFERRY_ variable is an error, as an unknown file key is:
 * MAILFERRY_WROKERS=3 must not be silently ignored. */
static int check_env(char *err, size_t errlen)
{
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "MAILFERRY_", 10) != 0)
			continue;
		const char *eq = strchr(*e, '=');
		size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
		if (!env_known(*e, n)) {
			char key[64];
			size_t k = 0;
			for (size_t i = 10; i < n && k + 1 < sizeof(key); i++)
				key[k++] = (char)tolower((unsigned char)(*e)[i]);
			key[k] = '\0';
			snprintf(err, errlen, "environment: unknown variable %.*s (there is no key %s)", (int)n, *e, key);
			return -1;
		}
	}
	return 0;
}

static int is_file_key(const struct ckey *k)
{
	static const char *const suffixes[] = { "_file", "_cert", "_key" };
	size_t n = strlen(k->name);
	if (k->type != C_STR)
		return 0;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t sn = strlen(suffixes[i]);
		if (n > sn && strcmp(k->name + n - sn, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

int config_check_files(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (!is_file_key(&keys[i]))
			continue;
		const char *path = *(char *const *)((const char *)cfg + keys[i].off);
		if (path == NULL)
			continue;
		FILE *f = fopen(path, "r");
		if (f == NULL) {
			snprintf(err, errlen, "%s: %s: %s", keys[i].name, path, strerror(errno));
			return -1;
		}
		char b;
		size_t got = fread(&b, 1, 1, f);
		int bad = ferror(f);
		int e = errno;
		fclose(f);
		if (bad) {
			snprintf(err, errlen, "%s: %s: %s", keys[i].name, path, strerror(e));
			return -1;
		}
		if (got == 0) {
			snprintf(err, errlen, "%s: %s: the file is empty", keys[i].name, path);
			return -1;
		}
	}
	return 0;
}

static char *default_database_url(void)
{
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return xstrdup("postgresql:///mailferry");
	return xasprintf("postgresql://postgres@/mailferry?host=%s/var/run", cwd);
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].def && set_key(cfg, &keys[i], keys[i].def, "default", err, errlen) < 0)
			return -1;
	if (path == NULL && access("mailferry.conf", F_OK) == 0)
		path = "mailferry.conf";
	if (path && load_file(cfg, path, err, errlen) < 0)
		return -1;
	if (check_env(err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < NKEYS; i++) {
		char env[80];
		env_name(&keys[i], env, sizeof(env));
		const char *v = getenv(env);
		if (v && set_key(cfg, &keys[i], v, env, err, errlen) < 0)
			return -1;
	}
	if (cfg->database_url == NULL)
		cfg->database_url = default_database_url();
	if (cfg->helo_name == NULL) {
		char h[256];
		cfg->helo_name = xstrdup(gethostname(h, sizeof(h)) == 0 ? (h[255] = 0, h) : "localhost");
	}
	if ((cfg->dkim_domain || cfg->dkim_selector || cfg->dkim_key_file) &&
	    !(cfg->dkim_domain && cfg->dkim_selector && cfg->dkim_key_file)) {
		snprintf(err, errlen, "dkim_domain, dkim_selector and dkim_key_file must be set together");
		return -1;
	}
	if (cfg->domain_recheck_interval < 1) {
		snprintf(err, errlen, "domain_recheck_interval must be at least 1s");
		return -1;
	}
	if (cfg->delivery_timeout < 1) {
		snprintf(err, errlen, "delivery_timeout must be at least 1s: it bounds every SMTP delivery");
		return -1;
	}
	if (cfg->bounce_listen && !cfg->bounce_domain) {
		snprintf(err, errlen, "bounce_listen needs bounce_domain");
		return -1;
	}
	if (!cfg->bounce_tls_cert != !cfg->bounce_tls_key) {
		snprintf(err, errlen, "bounce_tls_cert and bounce_tls_key must be set together");
		return -1;
	}
	if (!cfg->submission_tls_cert_file != !cfg->submission_tls_key_file) {
		snprintf(err, errlen, "submission_tls_cert_file and submission_tls_key_file must be set together");
		return -1;
	}
	/* ms in an int (smtpd/smtp_server.h); 0 would wait for nothing. */
	if (cfg->submission_command_timeout < 1 || cfg->submission_command_timeout > 3600) {
		snprintf(err, errlen, "submission_command_timeout must be between 1s and 1h");
		return -1;
	}
	if (cfg->submission_greet_wait > 60) {
		snprintf(err, errlen, "submission_greet_wait must be at most 60s (postscreen's is 6s)");
		return -1;
	}
	if (cfg->submission_tls == TLS_MODE_NONE) {
		snprintf(err, errlen, "submission_tls: want starttls or tls (submission is never without TLS;"
				      " submission_allow_plaintext_auth admits loopback clients)");
		return -1;
	}
	if (cfg->submission_listen && !cfg->submission_tls_cert_file &&
	    (cfg->submission_tls == TLS_MODE_IMPLICIT || !cfg->submission_allow_plaintext_auth)) {
		snprintf(err, errlen, "submission_listen needs submission_tls_cert_file and submission_tls_key_file%s",
			 cfg->submission_tls == TLS_MODE_IMPLICIT ? " with submission_tls = tls"
								  : " (or submission_allow_plaintext_auth = yes for loopback clients only)");
		return -1;
	}
	return 0;
}

void config_cleanup(struct config *cfg)
{
	for (size_t i = 0; i < NKEYS; i++) {
		switch (keys[i].type) {
		case C_STR: case C_HOSTPORT: case C_LOGLEVEL: case C_LOGFORMAT: case C_ROUTES: case C_ROLES:
		case C_RATES: case C_SERVERS: {
			char **sp = str_slot(cfg, &keys[i]);
			free(*sp);
			*sp = NULL;
			break;
		}
		default:
			break;
		}
	}
}

static void print_schedule(const struct schedule *s, FILE *out)
{
	for (int i = 0; i < s->n; i++)
		fprintf(out, "%s%lds", i ? "," : "", s->secs[i]);
}

/* A libpq URL or conninfo with its password replaced by "***". */
static void print_redacted_url(const char *url, FILE *out)
{
	const char *scheme = strstr(url, "://");
	const char *pw = strstr(url, "password=");
	if (scheme) {
		const char *at = strchr(scheme + 3, '@');
		const char *colon = strchr(scheme + 3, ':');
		if (at && colon && colon < at) {
			fprintf(out, "%.*s:***%s", (int)(colon - url), url, at);
			return;
		}
	}
	if (pw) {
		const char *end = pw + 9;
		while (*end && *end != ' ' && *end != '&')
			end++;
		fprintf(out, "%.*spassword=***%s", (int)(pw - url), url, end);
		return;
	}
	fputs(url, out);
}

void config_print(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct ckey *k = &keys[i];
		const void *slot = (const char *)cfg + k->off;
		fprintf(out, "%s = ", k->name);
		switch (k->type) {
		case C_INT: fprintf(out, "%d", *(const int *)slot); break;
		case C_BOOL: fputs(*(const int *)slot ? "yes" : "no", out); break;
		case C_DURATION: fprintf(out, "%lds", *(const long *)slot); break;
		case C_SIZE: fprintf(out, "%ld", *(const long *)slot); break;
		case C_SCHEDULE: print_schedule(slot, out); break;
		case C_SMARTHOST_TLS: fputs(smarthost_tls_names[*(const enum tls_mode *)slot], out); break;
		case C_TLS_POLICY: fputs(tls_policy_names[*(const enum tls_policy *)slot], out); break;
		case C_SENDER_POLICY: fputs(sender_policy_names[*(const enum sender_policy *)slot], out); break;
		default: {
			const char *s = *(char *const *)slot;
			if (s == NULL)
				fputs("(unset)", out);
			else if (k->secret && k->type == C_STR && strcmp(k->name, "database_url") == 0)
				print_redacted_url(s, out);
			else if (k->secret)
				fputs("***", out);
			else
				fputs(s, out);
		}
		}
		fputc('\n', out);
	}
}
