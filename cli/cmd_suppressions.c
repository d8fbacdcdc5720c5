/*
 * cmd_suppressions.c - "mailferry suppressions list|add|remove": the
 * suppression list straight against the database (same configuration as
 * serve).  Adding and removing write the same suppression.created /
 * suppression.removed events as the API (source "cli").
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "db/db.h"
#include "db/suppressions.h"
#include "util/config.h"
#include "util/limits.h"

static const char usage[] =
	"usage: mailferry suppressions list [--reason R] [--limit N] [--json] [--config FILE]\n"
	"       mailferry suppressions add EMAIL [--reason R] [--config FILE]\n"
	"       mailferry suppressions remove EMAIL [--config FILE]\n"
	"\n"
	"Mail to a suppressed address is recorded as 'suppressed' and never sent.\n"
	"Addresses are kept in lower case.\n"
	"list    shows the list in address order (all of it unless --limit),\n"
	"        optionally only one reason.\n"
	"add     adds an address; reason manual (default), complaint, unsubscribe\n"
	"        or bounce.  Adding a listed address changes nothing.\n"
	"remove  takes an address off the list (logged as an event).\n";

struct sup_opts {
	const char *config;
	const char *reason;
	long limit;
	int json;
};

static int valid_reason(const char *r)
{
	return strcmp(r, "manual") == 0 || strcmp(r, "bounce") == 0 || strcmp(r, "complaint") == 0 ||
	       strcmp(r, "unsubscribe") == 0;
}

static int valid_email(const char *s)
{
	const char *at = strrchr(s, '@');
	if (at == NULL || at == s || at[1] == '\0' || strlen(s) > MF_ADDRESS_MAX)
		return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 32 || strchr("<>()[],;:\\\"", *p))
			return 0;
	return 1;
}

struct list_state {
	int json;
	char last[MF_ADDRESS_MAX + 1];
	long printed;
};

static void print_row(const struct db_suppression *s, void *arg)
{
	struct list_state *st = arg;
	snprintf(st->last, sizeof(st->last), "%s", s->email);
	st->printed++;
	if (st->json) {
		printf("{\"email\":");
		cli_json_str(stdout, s->email);
		printf(",\"reason\":\"%s\",\"message_id\":", s->reason);
		if (*s->message_id)
			cli_json_str(stdout, s->message_id);
		else
			printf("null");
		printf(",\"created_at\":\"%s\"}\n", s->created_at);
	} else {
		printf("%-40s %-12s %-21s %s\n", s->email, s->reason, s->created_at, *s->message_id ? s->message_id : "-");
	}
}

static int sup_run(const char *sub, int argc, char **argv, const struct sup_opts *o)
{
	if (strcmp(sub, "list") != 0 && strcmp(sub, "add") != 0 && strcmp(sub, "remove") != 0)
		return fputs(usage, stderr), EXIT_USAGE;
	if (strcmp(sub, "list") == 0 ? argc != 0 : argc != 1)
		return cli_fail(EXIT_USAGE, "suppressions %s: %s", sub,
				strcmp(sub, "list") == 0 ? "takes no address" : "expected one EMAIL");
	if (argc == 1 && !valid_email(argv[0]))
		return cli_fail(EXIT_USAGE, "suppressions %s: '%s' is not an address local@domain", sub, argv[0]);
	if (o->reason && !valid_reason(o->reason))
		return cli_fail(EXIT_USAGE, "suppressions: --reason must be manual, bounce, complaint or unsubscribe");
	struct config cfg;
	if (cli_load_config(&cfg, o->config) != 0)
		return EXIT_USAGE;
	struct db_pool *pool = db_pool_new(cfg.database_url, 1);
	char err[512];
	int rc = 0;
	if (strcmp(sub, "list") == 0) {
		struct list_state st = { .json = o->json };
		if (!o->json)
			printf("%-40s %-12s %-21s %s\n", "EMAIL", "REASON", "CREATED", "MESSAGE");
		/* Page through in keyset order so a long list is never one result. */
		for (;;) {
			long want = 500;
			if (o->limit > 0 && o->limit - st.printed < want)
				want = o->limit - st.printed;
			if (want <= 0)
				break;
			int n = db_suppression_list(pool, o->reason, st.last[0] ? st.last : NULL, (int)want, print_row, &st,
						    err, sizeof(err));
			if (n < 0) {
				rc = cli_fail(EXIT_RUNTIME, "suppressions list: %s", err);
				break;
			}
			if (n < want)
				break;
		}
	} else if (strcmp(sub, "add") == 0) {
		struct list_state st = { 0 };
		int added = db_suppression_add(pool, argv[0], o->reason ? o->reason : "manual", "cli", print_row, &st, err,
					       sizeof(err));
		if (added < 0)
			rc = cli_fail(EXIT_RUNTIME, "suppressions add: %s", err);
		else
			fprintf(stderr, "%s\n", added ? "added" : "already on the list (unchanged)");
	} else {
		int removed = db_suppression_remove(pool, argv[0], "cli", err, sizeof(err));
		if (removed < 0)
			rc = cli_fail(EXIT_RUNTIME, "suppressions remove: %s", err);
		else if (removed == 0)
			rc = cli_fail(EXIT_RUNTIME, "suppressions remove: %s is not on the list", argv[0]);
		else
			printf("removed %s\n", argv[0]);
	}
	db_pool_free(pool);
	config_cleanup(&cfg);
	return rc;
}

int cmd_suppressions(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "reason", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sup_opts o = { 0 };
	int c;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:r:l:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'r': o.reason = optarg; break;
		case 'l':
			o.limit = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end || o.limit < 1)
				return cli_fail(EXIT_USAGE, "suppressions: --limit must be a positive number");
			break;
		case 'j': o.json = 1; break;
		case 'h': return fputs(usage, stdout), 0;
		default: return fputs(usage, stderr), EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return fputs(usage, stderr), EXIT_USAGE;
	return sup_run(argv[optind], argc - optind - 1, argv + optind + 1, &o);
}
