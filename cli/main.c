/*
 * main.c - mailferry's entry point: finds the command and runs it.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/config.h"
#include "util/log.h"
#include "util/version.h"

static const char usage[] =
	"usage: mailferry COMMAND [OPTIONS]\n"
	"\n"
	"Outbound transactional email relay.\n"
	"\n"
	"Commands:\n"
	"  serve        run the API, delivery workers, webhook sender and bounce listener\n"
	"  migrate      apply database schema migrations (idempotent)\n"
	"  keys         create, list and revoke API keys\n"
	"  config check print the effective configuration (secrets redacted)\n"
	"  send         send one message through the HTTP API\n"
	"  status       show a message, its recipients and its timeline\n"
	"  list         list recent messages\n"
	"  replay       requeue failed, bounced or deferred recipients\n"
	"  sink         capture SMTP server for development (messages to a directory)\n"
	"  suppressions list, add and remove suppressed addresses\n"
	"  domains      sending domains: add, list, show, rotate, remove (DKIM keys, DNS records)\n"
	"  version      print the version\n"
	"\n"
	"Run 'mailferry COMMAND --help' for a command's options.\n"
	"Exit status: 0 success, 1 runtime error, 2 usage or configuration error.\n";

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static int cmd_version(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: mailferry version\n\nPrints the version of mailferry.\n");
		return 0;
	}
	printf("mailferry %s\n", MF_VERSION);
	return 0;
}

static const struct command commands[] = {
	{ "serve", cmd_serve },
	{ "migrate", cmd_migrate },
	{ "keys", cmd_keys },
	{ "config", cmd_config },
	{ "sink", cmd_sink },
	{ "suppressions", cmd_suppressions },
	{ "version", cmd_version },
	{ "send", cmd_send },
	{ "status", cmd_status },
	{ "list", cmd_list },
	{ "replay", cmd_replay },
	{ "domains", cmd_domains },
};

int main(int argc, char **argv)
{
	if (argc < 2)
		return fputs(usage, stderr), EXIT_USAGE;
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
		return fputs(usage, stdout), 0;
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "mailferry: unknown command '%s'\n\n%s", argv[1], usage);
	return EXIT_USAGE;
}
