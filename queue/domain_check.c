/*
 * domain_check.c - the re-check of sending domains (see domain_check.h).
 *
 * A round retires expired keys, then claims and checks due domains one by
 * one until none is due.  One claim per domain: a stop between two checks
 * leaves no claimed domain unchecked; a stop during a check (asked between
 * its lookups) leaves that one domain for its next period.
 */
#include "queue/domain_check.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/domains.h"
#include "dns/dns.h"
#include "domains/verify.h"
#include "util/config.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct domain_check {
	const struct config *cfg;
	struct db_pool *pool;
	struct dns_resolver *dns;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop;
};

static int stopping(void *arg)
{
	struct domain_check *dc = arg;
	pthread_mutex_lock(&dc->mu);
	int s = dc->stop;
	pthread_mutex_unlock(&dc->mu);
	return s;
}

static void key_retired(const char *domain, const char *selector, void *arg)
{
	(void)arg;
	log_info("event=domain_key_retired domain=%s selector=%s", domain, selector);
}

static void claimed(const char *domain, void *arg)
{
	snprintf(arg, MF_DOMAIN_MAX + 1, "%s", domain);
}

/* Re-checks one claimed domain and logs what became of it. */
static void recheck(struct domain_check *dc, const char *domain)
{
	struct domain_verify_params vp = { .cfg = dc->cfg, .pool = dc->pool, .dns = dc->dns, .keep_on_doubt = 1,
					   .cancelled = stopping, .cancel_arg = dc };
	struct domain_verdict v;
	char err[512];
	switch (domain_verify(&vp, domain, &v, err, sizeof(err))) {
	case DOMAIN_VERIFY_DONE:
		if (!v.verified)
			log_warn("event=domain_verification_failed domain=%s record=%s changed=%s note=\"a record the"
				 " domain publishes is gone or changed (GET /v1/domains/DOMAIN has the checks)\"",
				 domain, v.first_bad, v.changed ? "yes" : "no");
		else
			log_info("event=domain_rechecked domain=%s verified=yes keys_promoted=%s", domain,
				 v.promoted ? "yes" : "no");
		break;
	case DOMAIN_VERIFY_INCONCLUSIVE:
		log_warn("event=domain_recheck_inconclusive domain=%s record=%s note=\"the lookup got no answer;"
			 " the status stays until the next check\"", domain, v.first_bad);
		break;
	case DOMAIN_VERIFY_DB_ERROR:
		log_warn_limited("event=domain_recheck_failed domain=%s error=\"%s\"", domain, err);
		break;
	case DOMAIN_VERIFY_NOT_FOUND: /* removed meanwhile */
	case DOMAIN_VERIFY_CANCELLED:
		break;
	}
}

static void round_once(struct domain_check *dc)
{
	char err[512];
	int n = db_domain_keys_retire(dc->pool, key_retired, NULL, err, sizeof(err));
	if (n < 0) {
		log_warn_limited("event=domain_key_retire_failed error=\"%s\"", err);
		return; /* the database is away: try again next round */
	}
	while (!stopping(dc)) {
		char domain[MF_DOMAIN_MAX + 1] = "";
		n = db_domain_claim_recheck(dc->pool, dc->cfg->domain_recheck_interval, 1, claimed, domain, err,
					    sizeof(err));
		if (n < 0)
			log_warn_limited("event=domain_recheck_claim_failed error=\"%s\"", err);
		if (n <= 0)
			return;
		recheck(dc, domain);
	}
}

static void *domain_check_main(void *arg)
{
	struct domain_check *dc = arg;
	long every = dc->cfg->domain_recheck_interval;
	if (every > MF_DOMAIN_RECHECK_POLL)
		every = MF_DOMAIN_RECHECK_POLL;
	log_info("event=domain_check_started interval=%ld poll=%ld", dc->cfg->domain_recheck_interval, every);
	for (;;) {
		round_once(dc);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += every;
		pthread_mutex_lock(&dc->mu);
		while (!dc->stop && pthread_cond_timedwait(&dc->cond, &dc->mu, &until) != ETIMEDOUT)
			;
		int s = dc->stop;
		pthread_mutex_unlock(&dc->mu);
		if (s)
			return NULL;
	}
}

struct domain_check *domain_check_start(const struct config *cfg, struct db_pool *pool, char *err, size_t errlen)
{
	struct dns_resolver *dns = dns_resolver_new(cfg->dns_servers, err, errlen);
	if (dns == NULL)
		return NULL;
	struct domain_check *dc = xcalloc(1, sizeof(*dc));
	dc->cfg = cfg;
	dc->pool = pool;
	dc->dns = dns;
	pthread_mutex_init(&dc->mu, NULL);
	pthread_cond_init(&dc->cond, NULL);
	if (pthread_create(&dc->thread, NULL, domain_check_main, dc) != 0) {
		snprintf(err, errlen, "domain re-check: cannot start its thread");
		pthread_mutex_destroy(&dc->mu);
		pthread_cond_destroy(&dc->cond);
		dns_resolver_free(dns);
		free(dc);
		return NULL;
	}
	return dc;
}

void domain_check_stop(struct domain_check *dc)
{
	if (dc == NULL)
		return;
	pthread_mutex_lock(&dc->mu);
	dc->stop = 1;
	pthread_cond_signal(&dc->cond);
	pthread_mutex_unlock(&dc->mu);
	pthread_join(dc->thread, NULL);
	pthread_mutex_destroy(&dc->mu);
	pthread_cond_destroy(&dc->cond);
	dns_resolver_free(dc->dns);
	free(dc);
}
