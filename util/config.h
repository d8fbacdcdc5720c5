/*
 * config.h - mailferry configuration: a key = value file plus MAILFERRY_<KEY>
 * environment overrides (INTERFACE.md "Configuration").
 *
 * config_load() fills a struct config from defaults, then the file, then the
 * environment.  It returns 0, or -1 with a message naming the key in err;
 * a MAILFERRY_ environment variable that names no key is an error too
 * (except the few read on purpose, listed in config.c).
 * The struct owns its strings; release them with config_cleanup().  After
 * loading, the struct is read-only and may be shared between threads.
 */
#ifndef MF_CONFIG_H
#define MF_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define MF_SCHEDULE_MAX 32

enum tls_mode { TLS_MODE_STARTTLS, TLS_MODE_IMPLICIT, TLS_MODE_NONE };
enum tls_policy { TLS_POLICY_OPPORTUNISTIC, TLS_POLICY_REQUIRED, TLS_POLICY_NONE };
/* Which from domains may send (docs/domains.md): any; known (registered,
 * POST /v1/domains); verified (registered and verified). */
enum sender_policy { SENDER_POLICY_ANY, SENDER_POLICY_KNOWN, SENDER_POLICY_VERIFIED };

struct schedule {
	int n;
	long secs[MF_SCHEDULE_MAX];
};

struct config {
	char *database_url;
	char *http_listen;
	int http_threads;
	char *admin_listen;
	int http_connections_per_address;
	long http_header_timeout;
	int db_pool_size;
	int workers;
	char *helo_name;
	char *smarthost;
	char *smarthost_user;
	char *smarthost_password;
	enum tls_mode smarthost_tls;
	char *routes;
	enum tls_policy tls_policy;
	int tls_verify;
	char *tls_ca_file;
	struct schedule retry_schedule;
	long max_queue_lifetime;
	long delivery_timeout;      /* seconds: one delivery job, routing to the end of DATA */
	long max_message_size;
	char *bounce_domain;
	char *bounce_listen;
	char *bounce_tls_cert;
	char *bounce_tls_key;
	char *dkim_domain;
	char *dkim_selector;
	char *dkim_key_file;
	char *master_key_file;      /* 32 bytes sealing domain private keys (mail/dkim_keys.h) */
	enum sender_policy sender_policy;
	long webhook_timeout;
	struct schedule webhook_retry_schedule;
	int webhook_allow_private;
	char *log_level;
	char *log_format;
	int log_recipients;
	int console;              /* serve the operations console at /console/ */
	char *roles;
	long shutdown_grace;
	long body_retention;
	long event_retention;
	char *capture_dir;
	long lease_time;
	int destination_concurrency;
	char *destination_rate;     /* NULL: no rate limits; see config_parse_rates() */
	char *submission_listen;    /* NULL: no SMTP submission (submit/) */
	enum tls_mode submission_tls; /* STARTTLS or IMPLICIT, never NONE */
	char *submission_tls_cert_file;
	char *submission_tls_key_file;
	int submission_allow_plaintext_auth; /* AUTH without TLS from loopback */
	long submission_command_timeout;     /* seconds a session waits for each command */
	long submission_greet_wait;          /* seconds before the banner; a client that talks in them is dropped */
	char *dns_servers;          /* NULL: /etc/resolv.conf; see config_parse_servers() */
	int mta_sts;                /* honour MTA-STS policies (RFC 8461) */
	long domain_recheck_interval; /* seconds between re-checks of a verified domain (queue/domain_check.h) */
};

/* path NULL: ./mailferry.conf when it exists.  Returns 0 or -1 (err set). */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
void config_cleanup(struct config *cfg);
/* Opens (and reads a byte of) every file a key names (dkim_key_file,
 * master_key_file, tls_ca_file, bounce_tls_cert, bounce_tls_key: string keys ending in _file,
 * _cert or _key).  Returns 0, or -1 with "key: path: reason" in err. */
int config_check_files(const struct config *cfg, char *err, size_t errlen);
/* Prints the effective configuration, secrets redacted, as key = value. */
void config_print(const struct config *cfg, FILE *out);

/* Value parsers, shared with the CLI.  Each returns 0 or -1. */
int config_parse_duration(const char *s, long *secs);
int config_parse_size(const char *s, long *bytes);
int config_parse_schedule(const char *s, struct schedule *out);
/* Splits "host:port" ("[v6]:port" too); host is written into host[hostsz]. */
int config_parse_hostport(const char *s, char *host, size_t hostsz, int *port);
/* destination_rate items: domain (not NUL-terminated, dlen bytes; "*" for
 * any other domain) and jobs per minute (0: none). */
typedef void (*config_rate_fn)(const char *domain, size_t dlen, long per_min, void *arg);
/* Parses "domain=N/min,...", calling fn (may be NULL) per item; 0, or -1
 * with the bad item quoted in why. */
int config_parse_rates(const char *s, config_rate_fn fn, void *arg, char *why, size_t whylen);

/* dns_servers items: an IP address in text form and a port (53 unless
 * given).  Calls fn (may be NULL) per item; 0, or -1 with the bad item
 * quoted in why. */
typedef void (*config_server_fn)(const char *host, int port, void *arg);
int config_parse_servers(const char *s, config_server_fn fn, void *arg, char *why, size_t whylen);

#endif
