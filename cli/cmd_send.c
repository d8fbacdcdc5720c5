/*
 * cmd_send.c - "mailferry send": submit one message through the HTTP API
 * (POST /v1/messages), because composing and signing happen in the API.
 *
 * The API address is --api URL, else http://<http_listen> from the
 * configuration (0.0.0.0 / [::] become loopback); the key is --key or
 * MAILFERRY_API_KEY.  The request JSON is written here by hand (jansson
 * stays in api/); attachments are read, base64-encoded (RFC 4648 §4) and
 * bounded by max_message_size.  The answer is read with cJSON.  Exit 0 on
 * 2xx, 1 on any other answer or a transport error (the problem's code,
 * detail and each of its field errors go to stderr), 2 usage.
 */
#include <cJSON.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_call.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/limits.h"

#define SEND_LIST_MAX MF_RECIPIENTS_MAX

static const char usage[] =
	"usage: mailferry send --from A --to B [--to C]... [--cc D]... [--bcc E]... --subject S\n"
	"                      (--text T | --html H | both) [--attach FILE]... [--tag T]...\n"
	"                      [--idempotency-key K] [--api URL] [--key KEY] [--json] [--config FILE]\n"
	"\n"
	"Sends one message through the HTTP API (POST /v1/messages).\n"
	"--api URL  the API (default: http://<http_listen> from the configuration)\n"
	"--key KEY  an API key with the send scope (default: $MAILFERRY_API_KEY)\n"
	"--json     print the API's JSON answer\n";

struct send_opts {
	const char *config, *from, *subject, *text, *html, *api, *key, *idem;
	const char *to[SEND_LIST_MAX], *cc[SEND_LIST_MAX], *bcc[SEND_LIST_MAX], *attach[SEND_LIST_MAX],
		*tags[MF_TAGS_MAX];
	int nto, ncc, nbcc, nattach, ntags, json;
};

static const char *content_type_for(const char *name)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".pdf", "application/pdf" }, { ".txt", "text/plain" },  { ".csv", "text/csv" },
		{ ".html", "text/html" },      { ".png", "image/png" },   { ".jpg", "image/jpeg" },
		{ ".jpeg", "image/jpeg" },     { ".gif", "image/gif" },   { ".json", "application/json" },
		{ ".zip", "application/zip" }, { ".ics", "text/calendar" },
	};
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

/* Appends {"filename","content","content_type"} for path; -1 with err. */
static int attach_file(struct buf *b, const char *path, long max, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "cannot open %s", path);
		return -1;
	}
	struct buf raw;
	buf_init(&raw, (size_t)max);
	char chunk[65536];
	size_t n;
	int rc = 0;
	while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = buf_append(&raw, chunk, n);
	if (rc == 0 && ferror(f))
		rc = -1;
	fclose(f);
	if (rc < 0) {
		snprintf(err, errlen, "%s: unreadable or larger than max_message_size", path);
		buf_cleanup(&raw);
		return -1;
	}
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	buf_puts(b, "{\"filename\":");
	cli_json_buf(b, base);
	buf_printf(b, ",\"content_type\":\"%s\",\"content\":\"", content_type_for(base));
	rc = base64_encode_buf(b, raw.data, raw.len, 0);
	buf_cleanup(&raw);
	if (rc == 0)
		rc = buf_puts(b, "\"}");
	if (rc < 0)
		snprintf(err, errlen, "the request is too large");
	return rc;
}

static void json_list(struct buf *b, const char *name, const char *const *v, int n)
{
	if (n == 0)
		return;
	buf_printf(b, ",\"%s\":[", name);
	for (int i = 0; i < n; i++) {
		if (i)
			buf_putc(b, ',');
		cli_json_buf(b, v[i]);
	}
	buf_putc(b, ']');
}

static int build_request(const struct send_opts *o, struct buf *b, long max, char *err, size_t errlen)
{
	buf_puts(b, "{\"from\":");
	cli_json_buf(b, o->from);
	json_list(b, "to", o->to, o->nto);
	json_list(b, "cc", o->cc, o->ncc);
	json_list(b, "bcc", o->bcc, o->nbcc);
	buf_puts(b, ",\"subject\":");
	cli_json_buf(b, o->subject);
	if (o->text) {
		buf_puts(b, ",\"text\":");
		cli_json_buf(b, o->text);
	}
	if (o->html) {
		buf_puts(b, ",\"html\":");
		cli_json_buf(b, o->html);
	}
	json_list(b, "tags", o->tags, o->ntags);
	if (o->nattach > 0) {
		buf_puts(b, ",\"attachments\":[");
		for (int i = 0; i < o->nattach; i++) {
			if (i)
				buf_putc(b, ',');
			if (attach_file(b, o->attach[i], max, err, errlen) < 0)
				return -1;
		}
		buf_putc(b, ']');
	}
	if (buf_putc(b, '}') < 0) {
		snprintf(err, errlen, "the request is too large");
		return -1;
	}
	return 0;
}

static int post(const struct send_opts *o, const char *url, const struct buf *req)
{
	struct buf resp;
	buf_init(&resp, MF_CLI_RESPONSE_MAX);
	struct cli_call call = { "send", o->key, "POST", url, req->data, req->len, o->idem };
	long status = 0;
	int failed = cli_api_call(&call, &status, &resp) < 0;
	int rc = 0;
	if (failed) {
		rc = EXIT_RUNTIME;
	} else if (status / 100 != 2) {
		if (o->json)
			fprintf(stderr, "%s\n", buf_cstr(&resp));
		rc = cli_report_problem("send", status, buf_cstr(&resp));
	} else if (o->json) {
		printf("%s\n", buf_cstr(&resp));
	} else {
		cJSON *doc = cJSON_Parse(buf_cstr(&resp));
		printf("queued %s\n", cli_json_member(doc, "id", buf_cstr(&resp)));
		cJSON_Delete(doc);
	}
	buf_cleanup(&resp);
	return rc;
}

static int add_item(const char **list, int *n, int max, const char *v, const char *what)
{
	if (*n >= max)
		return cli_fail(EXIT_USAGE, "send: at most %d %s", max, what);
	list[(*n)++] = v;
	return 0;
}

int cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },  { "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },      { "cc", required_argument, NULL, 'C' },
		{ "bcc", required_argument, NULL, 'B' },     { "subject", required_argument, NULL, 's' },
		{ "text", required_argument, NULL, 'T' },    { "html", required_argument, NULL, 'H' },
		{ "attach", required_argument, NULL, 'a' },  { "tag", required_argument, NULL, 'g' },
		{ "api", required_argument, NULL, 'u' },     { "key", required_argument, NULL, 'k' },
		{ "idempotency-key", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },          { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct send_opts o; /* large; one per process */
	memset(&o, 0, sizeof(o));
	int c, bad = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:f:t:C:B:s:T:H:a:g:u:k:i:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'f': o.from = optarg; break;
		case 't': bad |= add_item(o.to, &o.nto, SEND_LIST_MAX, optarg, "--to"); break;
		case 'C': bad |= add_item(o.cc, &o.ncc, SEND_LIST_MAX, optarg, "--cc"); break;
		case 'B': bad |= add_item(o.bcc, &o.nbcc, SEND_LIST_MAX, optarg, "--bcc"); break;
		case 's': o.subject = optarg; break;
		case 'T': o.text = optarg; break;
		case 'H': o.html = optarg; break;
		case 'a': bad |= add_item(o.attach, &o.nattach, SEND_LIST_MAX, optarg, "--attach"); break;
		case 'g': bad |= add_item(o.tags, &o.ntags, MF_TAGS_MAX, optarg, "--tag"); break;
		case 'u': o.api = optarg; break;
		case 'k': o.key = optarg; break;
		case 'i': o.idem = optarg; break;
		case 'j': o.json = 1; break;
		case 'h': return fputs(usage, stdout), 0;
		default: return fputs(usage, stderr), EXIT_USAGE;
		}
	}
	if (bad)
		return EXIT_USAGE;
	if (optind < argc || !o.from || o.nto + o.ncc + o.nbcc == 0 || !o.subject || (!o.text && !o.html)) {
		fputs("mailferry: send: --from, --to, --subject and --text or --html are required\n", stderr);
		return fputs(usage, stderr), EXIT_USAGE;
	}
	if (o.key == NULL)
		o.key = getenv("MAILFERRY_API_KEY");
	if (o.key == NULL || *o.key == '\0')
		return cli_fail(EXIT_USAGE, "send: no API key: give --key or set MAILFERRY_API_KEY");

	struct config cfg;
	if (cli_load_config(&cfg, o.config) != 0)
		return EXIT_USAGE;
	char base[512], url[600], err[512];
	cli_api_base(o.api, &cfg, base, sizeof(base));
	snprintf(url, sizeof(url), "%s/v1/messages", base);

	struct buf req;
	buf_init(&req, (size_t)cfg.max_message_size / 3 * 4 + 256 * 1024);
	int rc;
	if (build_request(&o, &req, cfg.max_message_size, err, sizeof(err)) < 0) {
		rc = cli_fail(EXIT_RUNTIME, "send: %s", err);
	} else {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = post(&o, url, &req);
		curl_global_cleanup();
	}
	buf_cleanup(&req);
	config_cleanup(&cfg);
	return rc;
}
