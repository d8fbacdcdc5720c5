/*
 * submit.h - SMTP submission (issue 19; docs/submission.md): applications
 * that speak only SMTP send through the same queue as POST /v1/messages.
 *
 * submit_new() starts an inbound SMTP server (smtpd/smtp_server.h) on
 * submission_listen with STARTTLS or implicit TLS, AUTH PLAIN/LOGIN
 * (RFC 4954) whose password is an API key with the send scope, and these
 * decisions:
 *   AUTH    the key is checked by params->check_key (cli/cmd_serve.c wires
 *           api/auth.c's check, without its cache, so a revoked key fails
 *           from the next session on); wrong key 535 5.7.8, the key store
 *           down 454 4.7.0; after MF_SUBMIT_AUTH_FAILURES_FREE failures in
 *           a row an address waits, doubling, before its next AUTH is
 *           looked at (421 4.7.0 until then).
 *   RCPT    an invalid address 501 5.1.3, a suppressed one 550 5.7.1, the
 *           database down 451 4.3.0.
 *   DATA    submit_msg.h's checks; sender_policy for every address of
 *           From: through params->check_sender (cli/cmd_serve.c wires
 *           api/domain_cache.h's check, the API's own): refused 550 5.7.1
 *           with the API's problem code in the text; DKIM with the API's signer, then one
 *           unit to the group committer (db/committer.h); 250 2.0.0 Ok:
 *           queued as <id> only once it committed.  A Message-ID the same
 *           key submitted within the idempotency window answers the first
 *           id and queues nothing.  The database down: 451 4.3.0 and
 *           nothing written.
 * Limits: util/limits.h MF_SUBMIT_*, submission_command_timeout and
 * submission_greet_wait.  Counted in params->metrics (util/metrics_names.h
 * MF_M_SUBMIT_*).
 * Everything borrowed in params must outlive the listener.
 */
#ifndef MF_SUBMIT_SUBMIT_H
#define MF_SUBMIT_SUBMIT_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct db_pool;
struct db_committer;
struct dkim_signer;
struct metrics;
struct submit;

enum submit_key_status {
	SUBMIT_KEY_OK,
	SUBMIT_KEY_INVALID,     /* unknown, revoked, or without the send scope */
	SUBMIT_KEY_UNAVAILABLE, /* the key store cannot be read now */
};

/* What sender_policy says of a From: domain (docs/domains.md). */
enum submit_sender_status {
	SUBMIT_SENDER_OK,
	SUBMIT_SENDER_NOT_REGISTERED, /* sender_policy = known: domain_not_registered */
	SUBMIT_SENDER_NOT_VERIFIED,   /* sender_policy = verified: domain_not_verified */
	SUBMIT_SENDER_UNAVAILABLE,    /* the domains cannot be read now */
};

struct submit_params {
	const struct config *cfg;           /* submission_*, helo_name, max_message_size */
	struct db_pool *pool;               /* suppression lookups */
	struct db_committer *committer;     /* the API's group committer */
	const struct dkim_signer *dkim;     /* the API's signer; NULL: unsigned */
	/* Checks an API key (the AUTH password); SUBMIT_KEY_OK sets *key_id. */
	enum submit_key_status (*check_key)(void *arg, const char *key, int64_t *key_id, char *err, size_t errlen);
	void *check_key_arg;
	/* Checks a From: domain (lower case) against sender_policy; NULL
	 * allows every domain. */
	enum submit_sender_status (*check_sender)(void *arg, const char *domain, char *err, size_t errlen);
	void *check_sender_arg;
	/* The DKIM signers of a From: domain (lower case), as the API signs:
	 * the active keys (Ed25519 first) of the domain or its closest
	 * registered parent, into signers[0..1] (both NULL: dkim signs).
	 * Returns a reference that keeps them alive, given back with
	 * release_signers(); NULL (signers unset) when the domains cannot be
	 * read, with err set.  domain_signers NULL: only dkim signs. */
	void *(*domain_signers)(void *arg, const char *domain, const struct dkim_signer *signers[2], char *err,
				size_t errlen);
	void (*release_signers)(void *arg, void *ref);
	void *signers_arg;
	struct metrics *metrics;            /* NULL: nothing counted */
};

/* Returns the running listener, or NULL with err set. */
struct submit *submit_new(const struct submit_params *params, char *err, size_t errlen);
int submit_port(const struct submit *sub);
/* Re-reads submission_tls_cert_file and _key_file (SIGHUP); 0, or -1 with
 * err set and the old pair kept. */
int submit_reload_tls(struct submit *sub, const char *cert_file, const char *key_file, char *err, size_t errlen);
/* Stops accepting, finishes sessions in progress, frees; NULL is a no-op. */
void submit_free(struct submit *sub);

#endif
