/*
 * api_call.c - HTTP calls of the operator commands (see api_call.h).
 */
#include "cli/api_call.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/limits.h"

void cli_api_base(const char *api, const struct config *cfg, char *base, size_t n)
{
	if (api)
		snprintf(base, n, "%s", api);
	else
		cli_api_default_url(cfg, base, n);
	size_t bl = strlen(base);
	while (bl > 0 && base[bl - 1] == '/')
		base[--bl] = '\0';
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	return buf_append(arg, p, size * n) < 0 ? 0 : size * n;
}

int cli_api_call(const struct cli_call *c, long *status, struct buf *resp)
{
	char auth[512], idem[MF_IDEMPOTENCY_KEY_MAX + 32], errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->key);
	hdr = curl_slist_append(hdr, auth);
	if (c->body)
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (c->idem) {
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s", c->idem);
		hdr = curl_slist_append(hdr, idem);
	}
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	if (c->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(c->body_len ? c->body_len : strlen(c->body)));
	} else if (strcmp(c->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	CURLcode cc = curl_easy_perform(h);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (cc != CURLE_OK) {
		cli_fail(EXIT_RUNTIME, "%s: %s: %s", c->cmd, c->url, *errbuf ? errbuf : curl_easy_strerror(cc));
		return -1;
	}
	return 0;
}

const char *cli_json_member(const cJSON *o, const char *name, const char *fallback)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : fallback;
}

int cli_report_problem(const char *cmd, long status, const char *body)
{
	cJSON *doc = cJSON_Parse(body);
	int rc = cli_fail(EXIT_RUNTIME, "%s: HTTP %ld %s: %s", cmd, status, cli_json_member(doc, "code", "error"),
			  cli_json_member(doc, "detail", doc ? "" : body));
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(doc, "errors"), *e;
	if (cJSON_IsArray(errors))
		cJSON_ArrayForEach(e, errors) {
			const char *field = cli_json_member(e, "field", "");
			fprintf(stderr, "  %s%s%s (%s)\n", field, *field ? ": " : "",
				cli_json_member(e, "message", ""), cli_json_member(e, "code", "-"));
		}
	cJSON_Delete(doc);
	return rc;
}
