/*
 * listen.c - a LISTEN connection that reconnects by itself (see listen.h).
 */
#include "db/listen.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "db/internal.h"
#include "util/xmalloc.h"

struct db_listener {
	char *conninfo;
	char *channel;
	PGconn *conn;
};

struct db_listener *db_listener_new(const char *conninfo, const char *channel)
{
	struct db_listener *l = xcalloc(1, sizeof(*l));
	l->conninfo = xstrdup(conninfo);
	l->channel = xstrdup(channel);
	return l;
}

void db_listener_free(struct db_listener *l)
{
	if (l == NULL)
		return;
	PQfinish(l->conn);
	free(l->conninfo);
	free(l->channel);
	free(l);
}

static int listener_connect(struct db_listener *l)
{
	char err[256], sql[128];
	snprintf(sql, sizeof(sql), "LISTEN %s", l->channel);
	l->conn = db_connect(l->conninfo, err, sizeof(err));
	if (l->conn == NULL || db_exec(l->conn, sql, err, sizeof(err)) < 0) {
		PQfinish(l->conn);
		l->conn = NULL;
		return -1;
	}
	return 1;
}

int db_listener_wait(struct db_listener *l, int timeout_ms)
{
	if (l->conn == NULL)
		return listener_connect(l);
	struct pollfd pfd = { .fd = PQsocket(l->conn), .events = POLLIN };
	int r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return 0;
	if (r > 0 && (!PQconsumeInput(l->conn) || PQstatus(l->conn) != CONNECTION_OK)) {
		PQfinish(l->conn);
		l->conn = NULL;
		return -1;
	}
	int got = 0;
	PGnotify *n;
	while ((n = PQnotifies(l->conn)) != NULL) {
		got = 1;
		PQfreemem(n);
	}
	return got;
}
