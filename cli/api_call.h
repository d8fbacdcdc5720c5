/*
 * api_call.h - the operator commands that talk to a running mailferry's
 * HTTP API (send, domains) share one request function and one way of
 * reporting a problem answer (RFC 9457).
 */
#ifndef MF_CLI_API_CALL_H
#define MF_CLI_API_CALL_H

#include <cJSON.h>
#include <stddef.h>

#include "util/buf.h"

struct cli_call {
	const char *cmd;      /* prefix of error lines: "send", "domains" */
	const char *key;      /* API key, sent as Authorization: Bearer */
	const char *method;   /* "GET", "POST", "DELETE" */
	const char *url;
	const char *body;     /* JSON or NULL (a POST without one sends "") */
	size_t body_len;      /* 0: strlen(body) */
	const char *idem;     /* Idempotency-Key or NULL */
};

struct config;

/* The API's base URL, without a final '/': api (the --api option) when
 * given, else the one cfg's http_listen serves. */
void cli_api_base(const char *api, const struct config *cfg, char *base, size_t n);

/* Performs c; *status and the answer's body in resp.  0, or -1 after a
 * transport error, reported on stderr as "cmd: url: why". */
int cli_api_call(const struct cli_call *c, long *status, struct buf *resp);

/* The string member name of object o, or fallback. */
const char *cli_json_member(const cJSON *o, const char *name, const char *fallback);

/* Reports a problem answer on stderr: "cmd: HTTP status code: detail",
 * then one line per errors[] entry (field: message (code)).  Returns
 * EXIT_RUNTIME. */
int cli_report_problem(const char *cmd, long status, const char *body);

#endif
