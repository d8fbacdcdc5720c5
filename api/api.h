/*
 * api.h - the HTTP API server (INTERFACE.md "HTTP API"), implemented in
 * api/server.c; what the rest of the process (cli/cmd_serve.c) sees.
 *
 * api_server_new() starts libmicrohttpd on cfg->http_listen with a thread
 * pool (and, when cfg->admin_listen is set, a second listener serving only
 * /healthz, /readyz and /metrics); requests are dispatched to the handlers
 * of api/handlers.h through the table in api/routes.c.  It returns NULL
 * with err set when it cannot listen.  The struct api_deps is borrowed and
 * must outlive the server (handlers reach it as req->deps);
 * api_server_free() stops the server and waits for its threads.
 */
#ifndef MF_API_H
#define MF_API_H

#include <stdatomic.h>
#include <stddef.h>

struct config;
struct db_committer;
struct dkim_signer;
struct domain_cache;
struct dns_resolver;
struct db_pool;
struct metrics;

/* What handlers need from the rest of the process (all borrowed). */
struct api_deps {
	const struct config *cfg;
	struct db_pool *pool;
	struct metrics *metrics;
	struct db_committer *committer; /* group commit for sends; api_server_new starts it when NULL */
	struct dkim_signer *dkim;       /* signs composed messages; api_server_new loads it when configured */
	struct domain_cache *domains;   /* sending domains and their signers; api_server_new makes it when NULL */
	struct dns_resolver *dns;       /* domain verification's lookups (dns_servers); made by api_server_new when NULL */
	atomic_int draining;   /* set on shutdown (by the main thread): /readyz answers 503 */
	int health_only;       /* no api role: only the public /healthz, /readyz, /metrics */
};

struct api_server;

struct api_server *api_server_new(struct api_deps *deps, char *err, size_t errlen);
/* The TCP port actually bound (useful with port 0): http_listen's, and
 * admin_listen's (0 when admin_listen is unset). */
int api_server_port(const struct api_server *srv);
int api_server_admin_port(const struct api_server *srv);
void api_server_free(struct api_server *srv);

#endif
