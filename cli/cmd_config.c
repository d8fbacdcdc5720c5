/*
 * cmd_config.c - "mailferry config check": validate and print the
 * effective configuration with secrets redacted.  Exit 2 on any error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/config.h"

static const char usage[] =
	"usage: mailferry config check [--config FILE]\n"
	"\n"
	"Loads the configuration (defaults, then FILE, or $CREDENTIALS_DIRECTORY/mailferry.conf\n"
	"under systemd, or ./mailferry.conf; then MAILFERRY_<KEY> environment variables),\n"
	"checks every value and prints the\n"
	"effective configuration with secrets redacted.\n"
	"Exit status 2 names the key when a key is unknown or a value is bad.\n";

int cmd_config(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	int c;
	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
			return fputs(usage, stdout), 0;
		return fputs(usage, stderr), EXIT_USAGE;
	}
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "c:h", opts, NULL)) != -1) {
		if (c == 'c')
			path = optarg;
		else if (c == 'h')
			return fputs(usage, stdout), 0;
		else
			return fputs(usage, stderr), EXIT_USAGE;
	}
	struct config cfg;
	if (cli_load_config(&cfg, path) != 0)
		return EXIT_USAGE;
	config_print(&cfg, stdout);
	config_cleanup(&cfg);
	return 0;
}
