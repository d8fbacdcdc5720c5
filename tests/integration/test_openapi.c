/*
 * docs/openapi.yaml against a running server: every documented path and
 * method must reach a handler (not the router's 404 "no such endpoint" or
 * 405).  The YAML is read with python3-yaml (installed by bootstrap), which
 * prints one "METHOD PATH" line per operation.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "harness.h"

/* Replaces {id} with id and any other {param} with a plausible value. */
static void fill_path(const char *tmpl, const char *id, char *out, size_t outsz)
{
	size_t o = 0;
	for (const char *p = tmpl; *p && o + 1 < outsz;) {
		if (*p == '{') {
			const char *e = strchr(p, '}');
			if (e == NULL)
				break;
			const char *v = (e - p == 3 && strncmp(p, "{id}", 4) == 0) ? id : "x@example.net";
			int n = snprintf(out + o, outsz - o, "%s", v);
			o += n > 0 ? (size_t)n : 0;
			p = e + 1;
			continue;
		}
		out[o++] = *p++;
	}
	out[o < outsz ? o : outsz - 1] = '\0';
}

Test(openapi, every_documented_path_answers)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR") ? getenv("MAILFERRY_TEST_SRCDIR") : ".";
	char *ops = NULL;
	int rc = th_run(&ops,
			"python3 -c 'import sys, yaml\n"
			"d = yaml.safe_load(open(sys.argv[1]))\n"
			"for p, item in d[\"paths\"].items():\n"
			"    for m in item:\n"
			"        if m in (\"get\", \"post\", \"put\", \"patch\", \"delete\"):\n"
			"            print(m.upper(), p)' '%s/docs/openapi.yaml'",
			src);
	cr_assert_eq(rc, 0, "cannot read docs/openapi.yaml: %s", ops);

	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	char admin[160];
	cr_assert_eq(api_make_key(s.db, "send,read,admin", admin, sizeof(admin)), 0);
	char *id = api_send_ok(&s, "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"text\":\"x\"}");

	int checked = 0;
	for (char *p = ops; *p;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		char method[16], tmpl[512], path[600];
		if (sscanf(p, "%15s %511s", method, tmpl) == 2) {
			fill_path(tmpl, id, path, sizeof(path));
			int has_body = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
			struct th_http r;
			cr_assert_eq(api_call(&s, method, path, admin, NULL, has_body ? "{}" : NULL, &r), 0, "%s %s", method, path);
			int routed = r.status != 405 && !(r.status == 404 && strstr(r.body, "no such endpoint"));
			cr_assert(routed, "%s %s is documented but answers %ld: %s", method, path, r.status, r.body);
			cr_assert_neq(r.status, 0);
			th_http_free(&r);
			checked++;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	cr_assert_geq(checked, 8, "only %d operations documented", checked);
	free(id);
	free(ops);
	api_srv_stop(&s, 1);
}

/*
 * The endpoints the operations console added answer what their schemas in
 * docs/openapi.yaml say (JSON Schema 2020-12, checked by python3-jsonschema
 * with the document's components for $ref).
 */
Test(openapi, stats_and_keys_match_their_schemas)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR") ? getenv("MAILFERRY_TEST_SRCDIR") : ".";
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	char admin[160];
	cr_assert_eq(api_make_key(s.db, "send,read,admin", admin, sizeof(admin)), 0);
	free(api_send_ok(&s, "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"text\":\"x\"}"));
	const char *cases[][2] = {
		{ "/v1/keys/self", "/v1/keys/self" },
		{ "/v1/keys", "/v1/keys" },
		{ "/v1/stats/overview", "/v1/stats/overview" },
		{ "/v1/stats/timeseries?interval=minute", "/v1/stats/timeseries" },
		{ "/v1/stats/timeseries?interval=hour", "/v1/stats/timeseries" },
	};
	char *dir = th_tmpdir("openapi");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct th_http r;
		cr_assert_eq(api_call(&s, "GET", cases[i][0], admin, NULL, NULL, &r), 0);
		cr_assert_eq(r.status, 200, "%s: %ld %s", cases[i][0], r.status, r.body);
		char file[512];
		snprintf(file, sizeof(file), "%s/body-%zu.json", dir, i);
		FILE *f = fopen(file, "w");
		cr_assert_not_null(f);
		fputs(r.body, f);
		fclose(f);
		th_http_free(&r);
		char *out = NULL;
		int rc = th_run(&out,
				"python3 -c 'import sys, json, yaml, jsonschema\n"
				"d = yaml.safe_load(open(sys.argv[1]))\n"
				"s = d[\"paths\"][sys.argv[2]][\"get\"][\"responses\"][\"200\"][\"content\"][\"application/json\"][\"schema\"]\n"
				"s = dict(s, components=d[\"components\"])\n"
				"jsonschema.Draft202012Validator(s).validate(json.load(open(sys.argv[3])))' '%s/docs/openapi.yaml' '%s' '%s'",
				src, cases[i][1], file);
		cr_assert_eq(rc, 0, "%s does not match its schema: %s", cases[i][0], out);
		free(out);
	}
	free(dir);
	api_srv_stop(&s, 1);
}
