/*
 * server.c - libmicrohttpd glue: the only file that includes microhttpd.h.
 *
 * Each connection gets a struct conn_state holding the api_req.  The body
 * is read into a buffer whose maximum depends on the route (no unbounded
 * buffering; a Content-Length over the limit is refused before the body is
 * read).  Then the route's handler runs.  A handler that returns
 * API_SUSPEND has handed the request to another thread: the connection is
 * suspended until that thread calls api_req_complete(), and the response is
 * queued when libmicrohttpd calls us again.  A per-request mutex makes sure
 * the resume cannot overtake the suspend.  A Content-Length over the limit
 * is answered 413 from the first call, before any of the body is read;
 * libmicrohttpd then closes the connection without reading the body.
 *
 * Each listener (http_listen, and admin_listen when set) is a daemon
 * without a listening socket of its own: api/gate.c accepts, enforces the
 * per-address and total connection limits and the request-head deadline,
 * and hands complete heads over with MHD_add_connection().  The daemon
 * reports each closed connection back (MHD_OPTION_NOTIFY_CONNECTION) so
 * that the gate's counts drop.  libmicrohttpd's own messages go through
 * api_netlog() (rate-limited, util/log.h format), not to stderr.
 *
 * Here: the request accessors of api/http.h (api_req_header, api_req_query,
 * api_req_complete), authentication's answer (api/auth.c judges the key,
 * this file answers 401/403/503), dispatch, and the listeners.  Response
 * bodies and headers are built by api/respond.c; this file only hands the
 * finished struct api_resp to libmicrohttpd.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "api/api.h"
#include "api/domain_cache.h"
#include "api/auth.h"
#include "api/gate.h"
#include "api/http.h"
#include "api/respond.h"
#include "api/routes.h"
#include "db/committer.h"
#include "dns/dns.h"
#include "mail/dkim.h"
#include "mail/dkim_keys.h"
#include "util/config.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

/* One listening address: its gate and its daemon. */
struct listener {
	struct api_server *srv;
	const char *name;   /* "http" or "admin" */
	int admin;          /* serves /healthz, /readyz and /metrics only */
	struct api_gate *gate;
	struct MHD_Daemon *daemon;
	int port;
};

struct api_server {
	struct listener http, admin;
	struct api_deps *deps;
	struct db_committer *committer; /* started here when deps had none */
	struct dkim_signer *dkim;       /* loaded here when deps had none */
	struct domain_cache *domains;   /* made here when deps had none */
	struct dns_resolver *dns;       /* made here when deps had none */
};

struct conn_state {
	struct api_req req;
	struct MHD_Connection *mc;
	const struct api_route *route;
	pthread_mutex_t mu;
	size_t body_max;
	int too_large;
	int responded;   /* a response was decided before the body was read */
	int done;        /* resumed: the response is ready */
	struct timespec start;
};

/* --- request accessors -------------------------------------------------- */

const char *api_req_header(struct api_req *req, const char *name)
{
	struct conn_state *cs = req->conn;
	return MHD_lookup_connection_value(cs->mc, MHD_HEADER_KIND, name);
}

const char *api_req_query(struct api_req *req, const char *name)
{
	struct conn_state *cs = req->conn;
	return MHD_lookup_connection_value(cs->mc, MHD_GET_ARGUMENT_KIND, name);
}

void api_req_complete(struct api_req *req)
{
	struct conn_state *cs = req->conn;
	struct MHD_Connection *mc = cs->mc;
	/* Taking the lock waits until dispatch() has suspended the connection.
	 * The resume comes after the unlock: once resumed, an MHD thread may
	 * answer and free cs (mutex included) at any moment. */
	pthread_mutex_lock(&cs->mu);
	cs->done = 1;
	pthread_mutex_unlock(&cs->mu);
	MHD_resume_connection(mc);
}

/* --- libmicrohttpd callbacks -------------------------------------------- */

static double elapsed(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static enum MHD_Result queue_response(struct conn_state *cs)
{
	struct api_resp *r = &cs->req.resp;
	if (r->status == 0)
		api_problem(&cs->req, 500, "internal", "the handler produced no response");
	struct MHD_Response *mr = MHD_create_response_from_buffer(r->body_len, r->body ? r->body : (char *)"",
								  MHD_RESPMEM_MUST_COPY);
	if (mr == NULL)
		return MHD_NO;
	if (r->content_type)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	for (int i = 0; i < r->nheaders; i++)
		MHD_add_response_header(mr, r->hname[i], r->hvalue[i]);
	enum MHD_Result ret = MHD_queue_response(cs->mc, (unsigned)r->status, mr);
	MHD_destroy_response(mr);

	struct api_deps *deps = cs->req.deps;
	if (deps->metrics) {
		char labels[256];
		const char *route = cs->req.route ? cs->req.route : "unmatched";
		snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\",status=\"%d\"", cs->req.method, route,
			 r->status);
		metrics_counter_add(deps->metrics, "mailferry_http_requests_total", "HTTP API requests.", labels, 1);
		snprintf(labels, sizeof(labels), "route=\"%s\"", route);
		metrics_observe(deps->metrics, "mailferry_http_request_duration_seconds",
				"HTTP API request latency.", labels, elapsed(&cs->start));
	}
	return ret;
}

static struct conn_state *conn_new(struct listener *l, struct MHD_Connection *mc, const char *method,
				   const char *url)
{
	struct api_server *srv = l->srv;
	struct conn_state *cs = xcalloc(1, sizeof(*cs));
	clock_gettime(CLOCK_MONOTONIC, &cs->start);
	pthread_mutex_init(&cs->mu, NULL);
	cs->mc = mc;
	cs->req.deps = srv->deps;
	cs->req.method = method;
	cs->req.path = url;
	cs->req.conn = cs;
	int path_known;
	cs->route = api_route_match(method, url, &cs->req, &path_known);
	if (l->admin && cs->route && (cs->route->scope != API_SCOPE_NONE || cs->route->flags & ROUTE_CONSOLE)) {
		/* The admin listener has no API routes. */
		cs->route = NULL;
		path_known = 0;
	}
	cs->body_max = api_route_body_max(cs->route, srv->deps->cfg);
	buf_init(&cs->req.body, cs->body_max);
	if (cs->route) {
		cs->req.route = cs->route->pattern;
	} else {
		cs->responded = 1;
		if (path_known)
			api_problem(&cs->req, 405, "method_not_allowed", "this path does not support this method");
		else
			api_problem(&cs->req, 404, "not_found", "no such endpoint");
		return cs;
	}
	const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > cs->body_max) {
		cs->responded = 1;
		api_problem(&cs->req, 413, "payload_too_large", "the request body is larger than allowed");
	}
	return cs;
}

static void conn_free(struct conn_state *cs)
{
	api_resp_cleanup(&cs->req.resp);
	for (int i = 0; i < cs->req.nparams; i++)
		free(cs->req.params[i]);
	buf_cleanup(&cs->req.body);
	pthread_mutex_destroy(&cs->mu);
	free(cs);
}

/*
 * Checks the bearer key for a route that needs a scope.  Returns 0
 * (req->api_key_id and req->scopes set), or -1 with the 401 (RFC 6750
 * §3, WWW-Authenticate), 403 or 503 answer in req->resp.
 */
static int authenticate(struct api_req *req, unsigned need_scope)
{
	struct api_auth who = { 0 };
	char err[256] = "";
	enum api_auth_status st = api_authenticate(req->deps->pool, api_req_header(req, "Authorization"),
						   need_scope, &who, err, sizeof(err));
	switch (st) {
	case AUTH_OK:
		req->api_key_id = who.key_id;
		req->scopes = who.scopes;
		return 0;
	case AUTH_MISSING:
		api_header(req, "WWW-Authenticate", "Bearer");
		api_problem(req, 401, "unauthorized", "missing Authorization: Bearer API key");
		return -1;
	case AUTH_INVALID:
		api_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		api_problem(req, 401, "unauthorized", "unknown or revoked API key");
		return -1;
	case AUTH_FORBIDDEN:
		api_problem(req, 403, "forbidden", "this API key lacks the scope this endpoint needs");
		return -1;
	case AUTH_UNAVAILABLE:
	default:
		log_warn_limited("event=auth_unavailable error=\"%s\"", err);
		api_problem(req, 503, "unavailable", "the database is unavailable; try again");
		return -1;
	}
}

/* Authenticates (when the route needs it), then runs the handler. */
static enum MHD_Result dispatch(struct conn_state *cs)
{
	if (cs->too_large) {
		api_problem(&cs->req, 413, "payload_too_large", "the request body is larger than allowed");
		return queue_response(cs);
	}
	if (cs->route->scope != API_SCOPE_NONE && authenticate(&cs->req, cs->route->scope) < 0)
		return queue_response(cs);
	pthread_mutex_lock(&cs->mu);
	enum api_result r = cs->route->handler(&cs->req);
	if (r == API_SUSPEND) {
		MHD_suspend_connection(cs->mc);
		pthread_mutex_unlock(&cs->mu);
		return MHD_YES;
	}
	pthread_mutex_unlock(&cs->mu);
	return queue_response(cs);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	(void)version;
	struct conn_state *cs = *con_cls;
	if (cs == NULL) {
		*con_cls = cs = conn_new(cls, mc, method, url);
		/* Refused by its declared length: answer now, read nothing. */
		if (cs->responded && cs->req.resp.status == 413)
			return queue_response(cs);
		return MHD_YES;
	}
	if (cs->done)
		return queue_response(cs);
	if (*upload_data_size) {
		if (!cs->responded && !cs->too_large && buf_append(&cs->req.body, upload_data, *upload_data_size) < 0)
			cs->too_large = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (cs->responded)
		return queue_response(cs);
	return dispatch(cs);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)mc, (void)toe;
	if (*con_cls)
		conn_free(*con_cls);
	*con_cls = NULL;
}

static int parse_listen(const char *key, const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char host[256];
	int port;
	memset(ss, 0, sizeof(*ss));
	if (config_parse_hostport(listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "%s: bad address %s", key, listen);
		return -1;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	} else {
		snprintf(err, errlen, "%s: %s is not an IP address", key, host);
		return -1;
	}
	return 0;
}

/* libmicrohttpd's messages ("Connection was closed by remote side ...")
 * into our log, rate-limited: a flood of misbehaving clients must not
 * become a flood of lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char text[512];
	vsnprintf(text, sizeof(text), fmt, ap);
	size_t n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = '\0';
	api_netlog("event=http_server_message message=%s", text);
}

/* A connection the gate handed over has closed: its address's count drops. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct listener *l = cls;
	(void)socket_context;
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED)
		return;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr)
		api_gate_release(l->gate, ci->client_addr);
}

/* api_gate handoff: the head is complete, libmicrohttpd takes over. */
static int handoff(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct listener *l = arg;
	/* On failure libmicrohttpd has closed fd. */
	return MHD_add_connection(l->daemon, fd, sa, salen) == MHD_YES ? 0 : -1;
}

/* The listening socket for addr ("host:port"); -1 with err set. */
static int listen_socket(const char *key, const char *addr, int *port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	if (parse_listen(key, addr, &ss, err, errlen) < 0)
		return -1;
	socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 1024) != 0) {
		snprintf(err, errlen, "cannot listen on %s (%s): %s", addr, key, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Starts one listener: its daemon first, then the gate that feeds it. */
static int listener_start(struct listener *l, const char *key, const char *addr, char *err, size_t errlen)
{
	const struct config *cfg = l->srv->deps->cfg;
	int lfd = listen_socket(key, addr, &l->port, err, errlen);
	if (lfd < 0)
		return -1;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
	/* The gate counts connections; libmicrohttpd's limit is set above
	 * its own so that it never refuses a connection handed over. */
	l->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l,
				     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
				     MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(l->admin || cfg->http_threads < 2 ? 0 : cfg->http_threads),
				     MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
				     MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)MF_API_IDLE_TIMEOUT_S,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)(MF_API_CONNECTIONS_MAX + 64),
				     MHD_OPTION_END);
	if (l->daemon == NULL) {
		snprintf(err, errlen, "%s: cannot start the HTTP server", key);
		close(lfd);
		return -1;
	}
	struct api_gate_params gp = {
		.name = l->name,
		.per_addr_max = cfg->http_connections_per_address,
		.total_max = MF_API_CONNECTIONS_MAX,
		/* 0 s would refuse every connection: 1 s to 1 h. */
		.head_timeout_ms = (int)(cfg->http_header_timeout < 1 ? 1000 : cfg->http_header_timeout > 3600 ? 3600000
							   : cfg->http_header_timeout * 1000),
		.metrics = l->srv->deps->metrics,
		.handoff = handoff,
		.arg = l,
		.publish = &l->gate, /* on_connection reads it in libmicrohttpd's threads */
	};
	if (api_gate_new(&gp, lfd, err, errlen) == NULL) {
		MHD_stop_daemon(l->daemon);
		l->daemon = NULL;
		return -1;
	}
	return 0;
}

/* Stops accepting (no handoff after this), closes every connection, then
 * frees the gate's counts. */
static void listener_free(struct listener *l)
{
	api_gate_stop(l->gate);
	if (l->daemon)
		MHD_stop_daemon(l->daemon);
	l->daemon = NULL;
	api_gate_free(l->gate);
	l->gate = NULL;
}

struct api_server *api_server_new(struct api_deps *deps, char *err, size_t errlen)
{
	const struct config *cfg = deps->cfg;
	struct dkim_signer *dkim = NULL;
	if (deps->dkim == NULL && cfg->dkim_domain && cfg->dkim_selector && cfg->dkim_key_file) {
		char derr[256];
		dkim = dkim_signer_new(cfg->dkim_domain, cfg->dkim_selector, cfg->dkim_key_file, derr, sizeof(derr));
		if (dkim == NULL) {
			snprintf(err, errlen, "dkim_key_file: %s", derr);
			return NULL;
		}
		log_info("event=dkim_loaded domain=%s selector=%s algorithm=%s", cfg->dkim_domain, cfg->dkim_selector,
			 dkim_signer_algorithm(dkim));
	}
	struct domain_cache *domains = NULL;
	if (deps->domains == NULL) {
		unsigned char mk[DKIM_MASTER_KEY_LEN];
		if (cfg->master_key_file && dkim_master_key_load(cfg->master_key_file, mk, err, errlen) < 0) {
			dkim_signer_free(dkim);
			return NULL;
		}
		domains = domain_cache_new(deps->pool, cfg->master_key_file ? mk : NULL);
		memset(mk, 0, sizeof(mk));
	}
	struct dns_resolver *dns = NULL;
	if (deps->dns == NULL && (dns = dns_resolver_new(cfg->dns_servers, err, errlen)) == NULL) {
		dkim_signer_free(dkim);
		domain_cache_free(domains);
		return NULL;
	}
	struct api_server *srv = xcalloc(1, sizeof(*srv));
	srv->deps = deps;
	if (domains)
		deps->domains = srv->domains = domains;
	if (dns)
		deps->dns = srv->dns = dns;
	srv->http = (struct listener){ .srv = srv, .name = "http" };
	srv->admin = (struct listener){ .srv = srv, .name = "admin", .admin = 1 };
	if (dkim)
		deps->dkim = srv->dkim = dkim;
	if (deps->committer == NULL)
		deps->committer = srv->committer = db_committer_new(deps->cfg->database_url);
	if (listener_start(&srv->http, "http_listen", cfg->http_listen, err, errlen) < 0 ||
	    (cfg->admin_listen && listener_start(&srv->admin, "admin_listen", cfg->admin_listen, err, errlen) < 0)) {
		listener_free(&srv->http);
		if (srv->committer)
			deps->committer = NULL;
		db_committer_free(srv->committer);
		if (srv->dkim)
			deps->dkim = NULL;
		dkim_signer_free(srv->dkim);
		if (srv->domains)
			deps->domains = NULL;
		domain_cache_free(srv->domains);
		if (srv->dns)
			deps->dns = NULL;
		dns_resolver_free(srv->dns);
		free(srv);
		return NULL;
	}
	return srv;
}

int api_server_port(const struct api_server *srv)
{
	return srv->http.port;
}

int api_server_admin_port(const struct api_server *srv)
{
	return srv->admin.daemon ? srv->admin.port : 0;
}

void api_server_free(struct api_server *srv)
{
	if (srv == NULL)
		return;
	/* Stop accepting, let the committer answer every suspended request
	 * (later sends are answered 503), then stop the daemons. */
	api_gate_stop(srv->http.gate);
	api_gate_stop(srv->admin.gate);
	db_committer_free(srv->committer);
	listener_free(&srv->http);
	listener_free(&srv->admin);
	if (srv->committer)
		srv->deps->committer = NULL;
	if (srv->dkim)
		srv->deps->dkim = NULL;
	dkim_signer_free(srv->dkim);
	if (srv->domains)
		srv->deps->domains = NULL;
	domain_cache_free(srv->domains);
	if (srv->dns)
		srv->deps->dns = NULL;
	dns_resolver_free(srv->dns);
	free(srv);
}
