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
	const char *path = NULL;
	int rc = cli_config_opts(argc, argv, usage, &path);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return fputs(usage, stderr), EXIT_USAGE;
	struct config cfg;
	if (cli_load_config(&cfg, path) != 0)
		return EXIT_USAGE;
	char err[1024];
	rc = db_migrate(cfg.database_url, stdout, err, sizeof(err));
	config_cleanup(&cfg);
	if (rc < 0)
		return cli_fail(EXIT_RUNTIME, "migrate: %s", err);
	return 0;
}
