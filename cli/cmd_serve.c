/*
 * cmd_serve.c - "mailferry serve": the daemon.
 *
 * Start-up order: configuration, logging, database pool, schema check
 * (refuse an unmigrated or newer schema), then the roles' components.
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait(): SIGTERM/SIGINT stop the process (readyz turns 503
 * first; a watchdog makes sure it exits within shutdown_grace), SIGHUP
 * reloads log_level and log_format (cli/lifecycle.c) and the submission
 * listener's certificate and key.
 * SIGPIPE is ignored: a peer closing a socket is an error return, not death.
 * The soft RLIMIT_NOFILE is raised to the hard limit at start: `workers`
 * SMTP sessions and as many idle ones in the relay's cache need
 * descriptors far beyond the usual soft limit of 1024.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/lifecycle.h"
#include "db/db.h"
#include "queue/domain_check.h"
#include "queue/gauges.h"
#include "queue/retention.h"
#include "bounce/bounce_listener.h"
#include "hooks/webhook_dispatch.h"
#include "queue/queue.h"
#include "relay/relay.h"
#include "bounce/bounces.h"
#include "api/auth.h"
#include "api/domain_cache.h"
#include "submit/submit.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/version.h"
#include "util/xmalloc.h"

static const char usage[] =
	"usage: mailferry serve [--config FILE] [--roles api,delivery,webhooks,bounces]\n"
	"\n"
	"Runs the relay: the HTTP API on http_listen, the SMTP delivery workers,\n"
	"the webhook sender and the bounce listener (the roles; all by default).\n"
	"Refuses to start against an unmigrated or newer database schema.\n"
	"SIGTERM or SIGINT stops it cleanly within shutdown_grace (readyz answers 503\n"
	"at once); SIGHUP reloads log_level, log_format and the submission certificate.\n";

struct app {
	struct config cfg;
	struct db_pool *pool;
	struct metrics *metrics;
	struct api_deps deps;
	struct api_server *api;
	/* operations (issue 7) */
	struct gauges_ctx *gauges;
	struct retention *retention;
	struct domain_check *domain_check; /* the daily re-check of sending domains */
	struct bounce_listener *bounces;
	struct webhook_dispatcher *webhooks;
	struct relay *relay;
	struct queue *queue;
	struct bounce_processor *bounce_proc;
	struct submit *submit;
};

/* submit_params.check_key over api/auth.c: the send scope, no cache. */
static enum submit_key_status check_key(void *arg, const char *key, int64_t *key_id, char *err, size_t errlen)
{
	struct api_auth a;
	switch (api_authenticate_key(arg, key, API_SCOPE_SEND, 1, &a, err, errlen)) {
	case AUTH_OK:
		*key_id = a.key_id;
		return SUBMIT_KEY_OK;
	case AUTH_UNAVAILABLE:
		return SUBMIT_KEY_UNAVAILABLE;
	default:
		return SUBMIT_KEY_INVALID;
	}
}

/* submit_params.check_sender over api/domain_cache.h: the API's own
 * sender_policy check. */
static enum submit_sender_status check_sender(void *arg, const char *domain, char *err, size_t errlen)
{
	struct app *app = arg;
	if (app->deps.domains == NULL)
		return SUBMIT_SENDER_OK; /* as api/messages.c: no cache, no policy */
	struct domain_match dm;
	switch (domain_cache_sender(app->deps.domains, app->cfg.sender_policy, domain, &dm, err, errlen)) {
	case DOMAIN_SENDER_OK:
		domain_match_release(&dm);
		return SUBMIT_SENDER_OK;
	case DOMAIN_SENDER_NOT_REGISTERED:
		return SUBMIT_SENDER_NOT_REGISTERED;
	case DOMAIN_SENDER_NOT_VERIFIED:
		return SUBMIT_SENDER_NOT_VERIFIED;
	default:
		return SUBMIT_SENDER_UNAVAILABLE;
	}
}

/* submit_params.domain_signers over api/domain_cache.h: the signers
 * the API's send path uses for a from domain; the reference is the
 * lookup, holding its snapshot. */
static void *domain_signers(void *arg, const char *domain, const struct dkim_signer *signers[2], char *err,
			    size_t errlen)
{
	struct app *app = arg;
	struct domain_match *dm = xcalloc(1, sizeof(*dm));
	if (domain_cache_lookup(app->deps.domains, domain, dm, err, errlen) != 0) {
		free(dm);
		return NULL;
	}
	signers[0] = dm->signers[0];
	signers[1] = dm->signers[1];
	return dm;
}

static void release_signers(void *arg, void *ref)
{
	(void)arg;
	domain_match_release(ref);
	free(ref);
}

/* queue_deliver_fn over relay_deliver(). */
static void deliver_via_relay(void *arg, struct delivery_job *job)
{
	relay_deliver(arg, job);
}

static int has_role(const char *roles, const char *role)
{
	size_t n = strlen(role);
	for (const char *p = roles; (p = strstr(p, role)) != NULL; p += n)
		if ((p == roles || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return 1;
	return 0;
}

/* Descriptors the process may need: every SMTP session in flight, as
 * many idle in the relay's cache, and a margin for the database pool,
 * the HTTP server, the bounce listener and the logs. */
static long fds_needed(const struct config *cfg)
{
	return has_role(cfg->roles, "delivery") ? 2L * cfg->workers + 256 : 256;
}

/* Raises the soft RLIMIT_NOFILE to the hard limit; warns when even that
 * is below what `workers` needs. */
static void raise_nofile(const struct config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = was;
	}
	long need = fds_needed(cfg);
	if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need)
		log_warn("event=fd_limit_low limit=%ld needed=%ld workers=%d note=\"raise the hard RLIMIT_NOFILE"
			 " (LimitNOFILE=, ulimit -Hn) or lower workers; sessions beyond it fail to connect\"",
			 (long)rl.rlim_cur, need, cfg->workers);
	else
		log_debug("event=fd_limit limit=%ld needed=%ld", (long)rl.rlim_cur, need);
}

static int app_start(struct app *app)
{
	char err[1024];
	raise_nofile(&app->cfg);
	app->metrics = metrics_new();
	metrics_declare_known(app->metrics);
	app->pool = db_pool_new(app->cfg.database_url, app->cfg.db_pool_size);
	int ready = db_check_ready(app->pool, err, sizeof(err));
	if (ready == -2) {
		log_error("event=schema_mismatch error=\"%s\"", err);
		return cli_fail(EXIT_RUNTIME, "serve: %s", err);
	}
	if (ready < 0)
		log_warn("event=database_unavailable error=\"%s\" note=\"starting anyway; /readyz answers 503 until it is back\"", err);

	app->deps.cfg = &app->cfg;
	app->deps.pool = app->pool;
	app->deps.metrics = app->metrics;
	app->gauges = queue_gauges_register(app->metrics, app->pool, app->cfg.db_pool_size, MF_VERSION);
	queue_gauges_destinations(app->gauges, &app->cfg);
	if (has_role(app->cfg.roles, "delivery")) {
		app->retention = retention_start(&app->cfg, app->pool, app->metrics);
		app->domain_check = domain_check_start(&app->cfg, app->pool, err, sizeof(err));
		if (app->domain_check == NULL)
			return cli_fail(EXIT_RUNTIME, "serve: %s", err);
	}
	/* Without the api role the listener still serves /healthz, /readyz and
	 * /metrics, so that workers can be probed and scraped. */
	app->deps.health_only = !has_role(app->cfg.roles, "api");
	{
		app->api = api_server_new(&app->deps, err, sizeof(err));
		if (app->api == NULL)
			return cli_fail(EXIT_RUNTIME, "serve: %s", err);
		log_info("event=api_listening addr=%s port=%d threads=%d health_only=%d", app->cfg.http_listen,
			 api_server_port(app->api), app->cfg.http_threads, app->deps.health_only);
		if (app->cfg.admin_listen)
			log_info("event=admin_listening addr=%s port=%d", app->cfg.admin_listen,
				 api_server_admin_port(app->api));
	}
	if (has_role(app->cfg.roles, "bounces") && app->cfg.bounce_listen) {
		struct bounce_listener_params bp = {
			.listen = app->cfg.bounce_listen,
			.domain = app->cfg.bounce_domain,
			.hostname = app->cfg.helo_name,
			.max_message_size = (size_t)app->cfg.max_message_size,
			.tls_cert_file = app->cfg.bounce_tls_cert,
			.tls_key_file = app->cfg.bounce_tls_key,
			.pool = app->pool,
			.metrics = app->metrics,
		};
		app->bounces = bounce_listener_new(&bp, err, sizeof(err));
		if (app->bounces == NULL)
			return cli_fail(EXIT_RUNTIME, "serve: %s", err);
		log_info("event=bounce_listening addr=%s port=%d domain=%s", app->cfg.bounce_listen,
			 bounce_listener_port(app->bounces), app->cfg.bounce_domain);
	}
	if (has_role(app->cfg.roles, "api") && app->cfg.submission_listen) {
		struct submit_params sp = { .cfg = &app->cfg, .pool = app->pool, .committer = app->deps.committer,
					    .dkim = app->deps.dkim, .check_key = check_key, .check_key_arg = app->pool,
					    .check_sender = check_sender, .check_sender_arg = app, .metrics = app->metrics };
		if (app->deps.domains) {
			sp.domain_signers = domain_signers;
			sp.release_signers = release_signers;
			sp.signers_arg = app;
		}
		app->submit = submit_new(&sp, err, sizeof(err));
		if (app->submit == NULL)
			return cli_fail(EXIT_RUNTIME, "serve: submission: %s", err);
		log_info("event=submission_listening addr=%s port=%d tls=%s", app->cfg.submission_listen,
			 submit_port(app->submit), app->cfg.submission_tls == TLS_MODE_IMPLICIT ? "implicit" : "starttls");
	}
	if (has_role(app->cfg.roles, "bounces"))
		app->bounce_proc = bounce_processor_new(&app->cfg, app->pool, app->metrics);
	if (has_role(app->cfg.roles, "webhooks"))
		app->webhooks = webhook_dispatcher_new(&app->cfg, app->pool, app->metrics);
	if (has_role(app->cfg.roles, "delivery")) {
		app->relay = relay_new(&app->cfg, err, sizeof(err));
		if (app->relay == NULL)
			return cli_fail(EXIT_RUNTIME, "serve: %s", err);
		relay_set_metrics(app->relay, app->metrics);
		relay_set_pool(app->relay, app->pool);
		struct queue_params qp = { .cfg = &app->cfg, .pool = app->pool, .metrics = app->metrics,
					   .deliver = deliver_via_relay, .deliver_arg = app->relay };
		app->queue = queue_new(&qp, err, sizeof(err));
		if (app->queue == NULL)
			return cli_fail(EXIT_RUNTIME, "serve: %s", err);
	}
	return 0;
}

static void app_stop(struct app *app)
{
	atomic_store(&app->deps.draining, 1);
	if (queue_free(app->queue) < 0) {
		/* Deliveries still running after shutdown_grace use the relay,
		 * the pool and the config: leave now, their leases expire. */
		log_warn("event=stopped note=\"exiting with deliveries in flight\"");
		fflush(NULL);
		_exit(0);
	}
	app->queue = NULL;
	relay_free(app->relay);
	app->relay = NULL;
	bounce_listener_free(app->bounces);
	app->bounces = NULL;
	submit_free(app->submit);
	app->submit = NULL;
	bounce_processor_free(app->bounce_proc);
	app->bounce_proc = NULL;
	api_server_free(app->api);
	app->api = NULL;
	retention_stop(app->retention);
	app->retention = NULL;
	domain_check_stop(app->domain_check);
	app->domain_check = NULL;
	webhook_dispatcher_free(app->webhooks);
	app->webhooks = NULL;
	db_pool_free(app->pool);
	metrics_free(app->metrics);
	queue_gauges_free(app->gauges);
	config_cleanup(&app->cfg);
}

/* SIGHUP: the submission listener's certificate and key are read again
 * (a renewed certificate needs no restart). */
static void reload_submission(struct app *app, const char *config_path)
{
	if (app->submit == NULL)
		return;
	struct config nc;
	char err[1024];
	if (config_load(&nc, config_path, err, sizeof(err)) != 0) {
		log_error("event=submission_tls_reload_failed error=%s", err);
		return;
	}
	if (nc.submission_tls_cert_file && submit_reload_tls(app->submit, nc.submission_tls_cert_file,
							     nc.submission_tls_key_file, err, sizeof(err)) != 0)
		log_error("event=submission_tls_reload_failed error=%s", err);
	config_cleanup(&nc);
}

/* Blocks until SIGTERM or SIGINT; returns the signal.  SIGHUP reloads. */
static int wait_for_stop(struct app *app, const sigset_t *set, const char *config_path)
{
	for (;;) {
		int sig = 0;
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			lifecycle_reload(config_path);
			reload_submission(app, config_path);
			continue;
		}
		return sig;
	}
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "roles", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *roles = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:r:h", opts, NULL)) != -1) {
		if (c == 'c')
			path = optarg;
		else if (c == 'r')
			roles = optarg;
		else if (c == 'h')
			return fputs(usage, stdout), 0;
		else
			return fputs(usage, stderr), EXIT_USAGE;
	}
	if (optind < argc)
		return fputs(usage, stderr), EXIT_USAGE;
	if (roles && setenv("MAILFERRY_ROLES", roles, 1) != 0)
		return cli_fail(EXIT_RUNTIME, "serve: setenv failed");

	struct app app = { 0 };
	char cred[4096];
	path = cli_config_path(path, cred, sizeof(cred)); /* SIGHUP reads the same file */
	if (cli_load_config(&app.cfg, path) != 0)
		return EXIT_USAGE;

	/* Block the signals before any thread starts, so all inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("event=starting version=%s roles=%s schema=%d", MF_VERSION, app.cfg.roles, db_schema_latest());
	int rc = app_start(&app);
	if (rc != 0) {
		app_stop(&app);
		return rc;
	}
	log_info("event=started");
	int sig = wait_for_stop(&app, &set, path);
	log_info("event=stopping signal=%s grace=%ld", sig == SIGTERM ? "SIGTERM" : "SIGINT", app.cfg.shutdown_grace);
	atomic_store(&app.deps.draining, 1);
	lifecycle_watchdog_start(app.cfg.shutdown_grace);
	app_stop(&app);
	log_info("event=stopped");
	return 0;
}
