/*
 * cmd_keys.c - "mailferry keys create|list|revoke": API key management
 * straight against the database (same configuration as serve).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "cli/cli.h"
#include "db/db.h"
#include "db/keys.h"
#include "util/config.h"

static const char usage[] =
	"usage: mailferry keys create --name NAME [--scopes send,read,admin] [--config FILE]\n"
	"       mailferry keys list [--json] [--config FILE]\n"
	"       mailferry keys revoke ID [--config FILE]\n"
	"\n"
	"create  makes an API key and prints its secret once (only a hash is stored).\n"
	"        Scopes: send (POST messages), read (GET), admin (everything).\n"
	"        Default: send,read.\n"
	"list    shows every key: id, name, public id, scopes, created, revoked.\n"
	"revoke  revokes the key with this id; requests with it get 401.\n";

struct keys_opts {
	const char *config;
	const char *name;
	const char *scopes;
	int json;
};

static void print_row(const struct db_key_row *r, void *arg)
{
	int json = *(int *)arg;
	if (json)
		printf("{\"id\":%" PRId64 ",\"name\":\"%s\",\"public_id\":\"%s\",\"scopes\":\"%s\","
		       "\"created_at\":\"%s\",\"revoked_at\":%s%s%s}\n",
		       r->id, r->name, r->public_id, r->scopes, r->created_at, *r->revoked_at ? "\"" : "",
		       *r->revoked_at ? r->revoked_at : "null", *r->revoked_at ? "\"" : "");
	else
		printf("%-6" PRId64 " %-20s %-14s %-16s %-21s %s\n", r->id, r->name, r->public_id, r->scopes,
		       r->created_at, *r->revoked_at ? r->revoked_at : "-");
}

static int keys_run(const char *sub, int argc, char **argv, const struct keys_opts *o)
{
	struct config cfg;
	if (cli_load_config(&cfg, o->config) != 0)
		return EXIT_USAGE;
	struct db_pool *pool = db_pool_new(cfg.database_url, 1);
	char err[512];
	int rc = 0;
	if (strcmp(sub, "create") == 0) {
		unsigned scopes;
		char key[128];
		int64_t id;
		if (o->name == NULL || *o->name == '\0')
			rc = cli_fail(EXIT_USAGE, "keys create: --name is required");
		else if (api_scopes_parse(o->scopes ? o->scopes : "send,read", &scopes) < 0)
			rc = cli_fail(EXIT_USAGE, "keys create: --scopes must be a list of send, read, admin");
		else if (api_key_create(pool, o->name, scopes, key, sizeof(key), &id, err, sizeof(err)) < 0)
			rc = cli_fail(EXIT_RUNTIME, "keys create: %s", err);
		else if (o->json)
			printf("{\"id\":%" PRId64 ",\"key\":\"%s\"}\n", id, key);
		else
			printf("id:  %" PRId64 "\nkey: %s\n(the key is shown only this once)\n", id, key);
	} else if (strcmp(sub, "list") == 0) {
		int json = o->json;
		if (!json)
			printf("%-6s %-20s %-14s %-16s %-21s %s\n", "ID", "NAME", "PUBLIC ID", "SCOPES", "CREATED",
			       "REVOKED");
		if (db_key_list(pool, print_row, &json, err, sizeof(err)) < 0)
			rc = cli_fail(EXIT_RUNTIME, "keys list: %s", err);
	} else if (strcmp(sub, "revoke") == 0) {
		char *end = NULL;
		long long id = argc == 1 ? strtoll(argv[0], &end, 10) : 0;
		if (argc != 1 || *end || id <= 0)
			rc = cli_fail(EXIT_USAGE, "keys revoke: expected one key ID");
		else if ((rc = db_key_revoke(pool, id, err, sizeof(err))) < 0)
			rc = cli_fail(EXIT_RUNTIME, "keys revoke: %s", err);
		else if (rc == 0)
			rc = cli_fail(EXIT_RUNTIME, "keys revoke: no active key with id %lld", id);
		else
			rc = 0, printf("revoked key %lld\n", id);
	} else {
		rc = (fputs(usage, stderr), EXIT_USAGE);
	}
	db_pool_free(pool);
	config_cleanup(&cfg);
	return rc;
}

int cmd_keys(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		{ "scopes", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct keys_opts o = { 0 };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:n:s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'n': o.name = optarg; break;
		case 's': o.scopes = optarg; break;
		case 'j': o.json = 1; break;
		case 'h': return fputs(usage, stdout), 0;
		default: return fputs(usage, stderr), EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return fputs(usage, stderr), EXIT_USAGE;
	return keys_run(argv[optind], argc - optind - 1, argv + optind + 1, &o);
}
