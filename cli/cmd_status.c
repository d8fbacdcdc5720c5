/*
 * cmd_status.c - "mailferry status MESSAGE_ID": a message, its recipients
 * and its event timeline, straight from the database (same configuration
 * as serve).  --json prints the document GET /v1/messages/{id} answers
 * (db_message_get, defined once in SQL), so scripts see the API's shapes.
 * Exit 1 when there is no such message.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "db/db.h"
#include "db/msgread.h"
#include "util/config.h"
#include "util/uuid.h"

static const char usage[] =
	"usage: mailferry status MESSAGE_ID [--json] [--config FILE]\n"
	"\n"
	"Shows the message's status, each recipient (status, attempts, next attempt,\n"
	"last SMTP response) and the timeline of its events.\n"
	"--json  the message as GET /v1/messages/{id} returns it\n";

struct view {
	int nrcpt, nevent;
};

static void on_message(const struct db_view_msg *m, void *arg)
{
	(void)arg;
	printf("message:  %s\nstatus:   %s\ncreated:  %s\nfrom:     %s\nsubject:  %s\n", m->id, m->status,
	       m->created_at, m->from, m->subject);
	printf("tags:     %s\nsize:     %ld bytes%s\n", *m->tags ? m->tags : "-", m->size,
	       m->body_kept ? "" : " (body deleted by retention)");
}

static void on_recipient(const struct db_view_rcpt *r, void *arg)
{
	struct view *v = arg;
	char email[CLI_CELL_MAX], resp[CLI_CELL_MAX], line[160];
	if (v->nrcpt++ == 0)
		printf("\n%-36s %-4s %-10s %8s  %-20s  %s\n", "RECIPIENT", "KIND", "STATUS", "ATTEMPTS", "NEXT ATTEMPT",
		       "LAST RESPONSE");
	snprintf(line, sizeof(line), "%s%s%s%s%s", r->last_code, *r->last_enhanced ? " " : "", r->last_enhanced,
		 *r->last_text ? " " : "", r->last_text);
	int waiting = strcmp(r->status, "queued") == 0 || strcmp(r->status, "deferred") == 0 ||
		      strcmp(r->status, "scheduled") == 0;
	printf("%s %-4s %-10s %8d  %-20s  %s\n", cli_cell(r->email, 36, email, sizeof(email)), r->kind,
	       r->status, r->attempts, waiting ? r->next_attempt_at : "-",
	       *line ? cli_clip(line, 58, resp, sizeof(resp)) : "-");
}

static void on_event(const struct db_view_event *e, void *arg)
{
	struct view *v = arg;
	char detail[CLI_CELL_MAX];
	if (v->nevent++ == 0)
		printf("\nTIMELINE\n");
	printf("%-20s  %-20s  %-32s  %s\n", e->created_at, e->type, e->recipient,
	       cli_clip(e->detail, 78, detail, sizeof(detail)));
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	struct view v = { 0 };
	int c, json = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
		if (c == 'c')
			path = optarg;
		else if (c == 'j')
			json = 1;
		else if (c == 'h')
			return fputs(usage, stdout), 0;
		else
			return fputs(usage, stderr), EXIT_USAGE;
	}
	if (argc - optind != 1)
		return fputs(usage, stderr), EXIT_USAGE;
	const char *id = argv[optind];
	if (!uuid_valid(id))
		return cli_fail(EXIT_USAGE, "status: not a message id: %s", id);
	struct config cfg;
	if (cli_load_config(&cfg, path) != 0)
		return EXIT_USAGE;
	struct db_pool *pool = db_pool_new(cfg.database_url, 1);
	struct db_message_view_cb cb = { on_message, on_recipient, on_event, &v };
	char err[512] = "", *doc = NULL;
	int found = json ? db_message_get(pool, id, &doc, err, sizeof(err))
			 : db_message_view(pool, id, &cb, err, sizeof(err));
	int rc = 0;
	if (found < 0)
		rc = cli_fail(EXIT_RUNTIME, "status: %s", err);
	else if (found == 0)
		rc = cli_fail(EXIT_RUNTIME, "status: no such message %s", id);
	else if (json)
		printf("%s\n", doc);
	free(doc);
	db_pool_free(pool);
	config_cleanup(&cfg);
	return rc;
}
