/*
 * cmd_domains.c - "mailferry domains add|list|show|rotate|remove": the
 * sending domains through the HTTP API (/v1/domains, admin scope), since
 * keys are made and sealed, and the signing cache dropped, by the serve
 * process that holds master_key_file (docs/domains.md).
 *
 * The API address and key are found as "mailferry send" finds them
 * (--api URL or http://<http_listen>; --key or MAILFERRY_API_KEY, here a
 * key with the admin scope).  add, show and rotate print the records to
 * publish as zone-file lines (RFC 1035 §5.1; TXT values over 255 octets
 * split into several character-strings, §3.3.14); --json prints the API's
 * answer.  The answer is read with cJSON.  Exit 0 on 2xx, 1 on any other
 * answer or a transport error (the problem's code and detail on stderr),
 * 2 usage.
 */
#include <cJSON.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_call.h"
#include "cli/cli.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/limits.h"

static const char usage[] =
	"usage: mailferry domains add DOMAIN    [--json] [--api URL] [--key KEY] [--config FILE]\n"
	"       mailferry domains list          [--json] ...\n"
	"       mailferry domains show DOMAIN   [--json] ...\n"
	"       mailferry domains verify DOMAIN [--json] ...\n"
	"       mailferry domains rotate DOMAIN [--json] ...\n"
	"       mailferry domains remove DOMAIN [--json] ...\n"
	"\n"
	"Sending domains: mail from a registered domain (or a subdomain of one)\n"
	"is DKIM-signed with the domain's own Ed25519 and RSA-2048 keys.\n"
	"add     registers DOMAIN, makes its keys and prints the DNS records to\n"
	"        publish, as lines for a zone file\n"
	"list    the registered domains and their status\n"
	"show    one domain with its records and keys\n"
	"verify  looks the records up now (dns_servers) and prints what was found;\n"
	"        the domain is verified when its DKIM and return-path records match\n"
	"rotate  new keys under new selectors; both generations are published,\n"
	"        the old ones keep signing until the new ones are verified\n"
	"remove  forgets DOMAIN and its keys (its mail is signed as before it was added)\n"
	"--api URL  the API (default: http://<http_listen> from the configuration)\n"
	"--key KEY  an API key with the admin scope (default: $MAILFERRY_API_KEY)\n"
	"--json     print the API's JSON answer\n";

struct dom_opts {
	const char *config, *api, *key;
	int json;
};

/* A TXT value as zone-file character-strings of at most 255 octets,
 * quotes and backslashes escaped (RFC 1035 §5.1). */
static void print_txt(const char *v)
{
	size_t n = strlen(v);
	int parts = n > 255;
	if (parts)
		fputs("( ", stdout);
	for (size_t i = 0; i < n || i == 0; i += 255) {
		putchar('"');
		for (size_t k = i; k < n && k < i + 255; k++) {
			if (v[k] == '"' || v[k] == '\\')
				putchar('\\');
			putchar(v[k]);
		}
		putchar('"');
		if (i + 255 < n)
			putchar(' ');
		if (n == 0)
			break;
	}
	if (parts)
		fputs(" )", stdout);
}

/* A domain answer as a zone-file fragment. */
static void print_domain(const cJSON *d)
{
	printf("; %s: status %s, added %s\n", cli_json_member(d, "domain", "?"), cli_json_member(d, "status", "?"),
	       cli_json_member(d, "created_at", "?"));
	const cJSON *records = cJSON_GetObjectItemCaseSensitive(d, "records"), *r;
	cJSON_ArrayForEach(r, records) {
		const char *type = cli_json_member(r, "type", "?"), *purpose = cli_json_member(r, "purpose", "");
		printf("%s.\t3600\tIN\t%s\t", cli_json_member(r, "name", "?"), type);
		if (strcmp(type, "TXT") == 0)
			print_txt(cli_json_member(r, "value", ""));
		else
			fputs(cli_json_member(r, "value", ""), stdout);
		printf("\t; %s", purpose);
		if (strcmp(purpose, "dkim") == 0)
			printf(" (%s key)", cli_json_member(r, "key_state", "?"));
		if (strcmp(purpose, "dmarc") == 0)
			printf(" (replace the rua address with a mailbox that takes DMARC reports)");
		putchar('\n');
	}
	const cJSON *checks = cJSON_GetObjectItemCaseSensitive(d, "checks"), *k;
	if (cJSON_IsArray(checks)) {
		printf("; last checked %s:\n", cli_json_member(d, "checked_at", "?"));
		cJSON_ArrayForEach(k, checks) {
			const cJSON *f = cJSON_GetObjectItemCaseSensitive(k, "found");
			const cJSON *m = cJSON_GetObjectItemCaseSensitive(k, "matches");
			printf(";   %-8s %s %s: %s\n", cli_json_member(k, "purpose", "?"), cli_json_member(k, "type", "?"), cli_json_member(k, "name", "?"),
			       cJSON_IsTrue(m) ? "matches" : cJSON_IsTrue(f) ? "found, does not match" : "not found");
		}
	}
}

static int run(const struct dom_opts *o, const char *sub, const char *domain, const char *base)
{
	char url[1024], body[600];
	const char *method = "GET", *payload = NULL;
	if (strcmp(sub, "add") == 0) {
		method = "POST";
		snprintf(url, sizeof(url), "%s/v1/domains", base);
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "domain", domain);
		char *s = cJSON_PrintUnformatted(j);
		snprintf(body, sizeof(body), "%s", s);
		cJSON_free(s);
		cJSON_Delete(j);
		payload = body;
	} else if (strcmp(sub, "list") == 0) {
		snprintf(url, sizeof(url), "%s/v1/domains", base);
	} else {
		char *esc = curl_easy_escape(NULL, domain, 0);
		if (strcmp(sub, "rotate") == 0 || strcmp(sub, "verify") == 0)
			method = "POST";
		else if (strcmp(sub, "remove") == 0)
			method = "DELETE";
		snprintf(url, sizeof(url), "%s/v1/domains/%s%s", base, esc,
			 strcmp(sub, "rotate") == 0 ? "/rotate" : strcmp(sub, "verify") == 0 ? "/verify" : "");
		curl_free(esc);
	}
	struct buf resp;
	buf_init(&resp, MF_CLI_RESPONSE_MAX);
	long status = 0;
	int rc = 0;
	struct cli_call call = { "domains", o->key, method, url, payload, 0, NULL };
	if (cli_api_call(&call, &status, &resp) < 0) {
		rc = EXIT_RUNTIME;
	} else if (status / 100 != 2) {
		if (o->json)
			fprintf(stderr, "%s\n", buf_cstr(&resp));
		rc = cli_report_problem("domains", status, buf_cstr(&resp));
	} else if (strcmp(sub, "remove") == 0) {
		if (o->json)
			printf("{\"domain\":\"%s\",\"removed\":true}\n", domain);
		else
			printf("removed %s\n", domain);
	} else if (o->json) {
		printf("%s\n", buf_cstr(&resp));
	} else {
		cJSON *doc = cJSON_Parse(buf_cstr(&resp));
		if (strcmp(sub, "list") == 0) {
			printf("%-40s %-9s %-21s %s\n", "DOMAIN", "STATUS", "CREATED", "VERIFIED");
			const cJSON *d;
			cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(doc, "data"))
				printf("%-40s %-9s %-21s %s\n", cli_json_member(d, "domain", "?"), cli_json_member(d, "status", "?"),
				       cli_json_member(d, "created_at", "?"), cli_json_member(d, "verified_at", "-"));
		} else {
			print_domain(doc);
		}
		cJSON_Delete(doc);
	}
	buf_cleanup(&resp);
	return rc;
}

int cmd_domains(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "api", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },    { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
	};
	struct dom_opts o = { 0 };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:u:k:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'u': o.api = optarg; break;
		case 'k': o.key = optarg; break;
		case 'j': o.json = 1; break;
		case 'h': return fputs(usage, stdout), 0;
		default: return fputs(usage, stderr), EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return fputs(usage, stderr), EXIT_USAGE;
	const char *sub = argv[optind];
	int nargs = argc - optind - 1;
	int takes_domain = strcmp(sub, "list") != 0;
	if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "rotate") &&
	    strcmp(sub, "remove") && strcmp(sub, "verify"))
		return cli_fail(EXIT_USAGE, "domains: unknown subcommand '%s' (add, list, show, verify, rotate, remove)",
				sub);
	if (nargs != takes_domain)
		return cli_fail(EXIT_USAGE, "domains %s: %s", sub, takes_domain ? "expected one DOMAIN" : "takes no DOMAIN");
	const char *domain = takes_domain ? argv[optind + 1] : NULL;
	if (domain && strlen(domain) > MF_DOMAIN_MAX)
		return cli_fail(EXIT_USAGE, "domains %s: the domain is longer than %d characters", sub, MF_DOMAIN_MAX);
	if (o.key == NULL)
		o.key = getenv("MAILFERRY_API_KEY");
	if (o.key == NULL || *o.key == '\0')
		return cli_fail(EXIT_USAGE, "domains: no API key: give --key or set MAILFERRY_API_KEY (admin scope)");
	struct config cfg;
	if (cli_load_config(&cfg, o.config) != 0)
		return EXIT_USAGE;
	char base[512];
	cli_api_base(o.api, &cfg, base, sizeof(base));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = run(&o, sub, domain, base);
	curl_global_cleanup();
	config_cleanup(&cfg);
	return rc;
}
