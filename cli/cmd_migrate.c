/*
 * cmd_migrate.c - "mailferry migrate": apply db/migrations in order.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "db/db.h"
#include "util/config.h"

static const char usage[] =
	"usage: mailferry migrate [--config FILE]\n"
	"\n"
	"Applies the schema migrations this mailferry carries, in order, each in its\n"
	"own transaction, and records them in schema_migrations.  Running it again\n"
	"is a no-op; concurrent runs wait for each other.\n";

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		if (c == 'c')
			path = optarg;
		else if (c == 'h')
			return fputs(usage, stdout), 0;
		else
			return fputs(usage, stderr), EXIT_USAGE;
	}
	if (optind < argc)
		return fputs(usage, stderr), EXIT_USAGE;
	struct config cfg;
	if (cli_load_config(&cfg, path) != 0)
		return EXIT_USAGE;
	char err[1024];
	int rc = db_migrate(cfg.database_url, stdout, err, sizeof(err));
	config_cleanup(&cfg);
	if (rc < 0)
		return cli_fail(EXIT_RUNTIME, "migrate: %s", err);
	return 0;
}
