/*
 * cmd_list.c - "mailferry list": recent messages, newest first, with
 * filters, straight from the database (same configuration as serve).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "db/db.h"
#include "db/msgread.h"
#include "util/limits.h"
#include "util/config.h"

/* The message statuses GET /v1/messages accepts (api/messages.c). */
static const char *const list_statuses[] = {
	"queued", "scheduled", "sending", "deferred", "delivered", "bounced", "failed", "suppressed",
	"canceled", "partial", NULL,
};

static int status_known(const char *s)
{
	for (int i = 0; list_statuses[i]; i++)
		if (strcmp(s, list_statuses[i]) == 0)
			return 1;
	return 0;
}

static const char usage[] =
	"usage: mailferry list [--status S] [--since T] [--recipient R] [--limit N] [--json] [--config FILE]\n"
	"\n"
	"Lists messages, newest first (default " MF_STR(MF_CLI_LIST_DEFAULT) ", at most " MF_STR(MF_CLI_LIST_MAX) ").\n"
	"--status S     message status: queued, scheduled, sending, deferred, delivered, bounced,\n"
	"               failed, suppressed, canceled, partial\n"
	"--since T      created at or after T: RFC 3339 time or a duration ago (24h, 7d)\n"
	"--recipient R  messages with this recipient address\n"
	"--json         one JSON object per line\n";

static void print_row(const struct db_view_msg *m, void *arg)
{
	int json = *(int *)arg;
	if (json) {
		printf("{\"id\":\"%s\",\"created_at\":\"%s\",\"status\":", m->id, m->created_at);
		cli_json_str(stdout, m->status);
		printf(",\"from\":");
		cli_json_str(stdout, m->from);
		printf(",\"subject\":");
		cli_json_str(stdout, m->subject);
		printf(",\"recipients\":%d,\"first_recipient\":", m->nrcpt);
		cli_json_str(stdout, m->first_rcpt);
		printf("}\n");
		return;
	}
	char to[CLI_CELL_MAX], from[CLI_CELL_MAX], subj[CLI_CELL_MAX];
	char rc[MF_ADDRESS_MAX + 8];
	snprintf(rc, sizeof(rc), "%s%s", m->first_rcpt, m->nrcpt > 1 ? " +" : "");
	printf("%-36s  %-20s  %-9s  %s  %s  %s\n", m->id, m->created_at, m->status,
	       cli_cell(rc, 30, to, sizeof(to)), cli_cell(m->from, 28, from, sizeof(from)),
	       cli_clip(m->subject, 36, subj, sizeof(subj)));
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },    { "status", required_argument, NULL, 's' },
		{ "since", required_argument, NULL, 'S' },     { "recipient", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'l' },     { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },            { NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	char since[64];
	struct db_message_view_filter f = { .limit = MF_CLI_LIST_DEFAULT };
	int json = 0, c;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:S:r:l:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 's':
			if (!status_known(optarg))
				return cli_fail(EXIT_USAGE, "list: --status: not a message status: %s", optarg);
			f.status = optarg;
			break;
		case 'S':
			if (cli_time_arg(optarg, since, sizeof(since)) < 0)
				return cli_fail(EXIT_USAGE, "list: --since: not a time or duration: %s", optarg);
			f.since = since;
			break;
		case 'r': f.recipient = optarg; break;
		case 'l':
			f.limit = (int)strtol(optarg, &end, 10);
			if (*end || f.limit < 1 || f.limit > MF_CLI_LIST_MAX)
				return cli_fail(EXIT_USAGE, "list: --limit must be 1..%d", MF_CLI_LIST_MAX);
			break;
		case 'j': json = 1; break;
		case 'h': return fputs(usage, stdout), 0;
		default: return fputs(usage, stderr), EXIT_USAGE;
		}
	}
	if (optind < argc)
		return fputs(usage, stderr), EXIT_USAGE;
	struct config cfg;
	if (cli_load_config(&cfg, path) != 0)
		return EXIT_USAGE;
	struct db_pool *pool = db_pool_new(cfg.database_url, 1);
	char err[512];
	if (!json)
		printf("%-36s  %-20s  %-9s  %-30s  %-28s  %s\n", "ID", "CREATED", "STATUS", "TO", "FROM", "SUBJECT");
	int rc = 0;
	if (db_message_view_list(pool, &f, print_row, &json, err, sizeof(err)) < 0)
		rc = cli_fail(EXIT_RUNTIME, "list: %s", err);
	db_pool_free(pool);
	config_cleanup(&cfg);
	return rc;
}
