/*
 * cmd_config.c - "mailferry config check": validate and print the
 * effective configuration with secrets redacted.  Exit 2 on any error.
 *
 * Beyond config_load()'s checks it opens every file a key names and loads
 * the DKIM key and the CA file as serve would, so a wrong path or a key
 * that does not parse is reported here, naming the key, and not by serve.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "mail/dkim.h"
#include "mail/dkim_keys.h"
#include "relay/tls.h"
#include "util/config.h"

static const char usage[] =
	"usage: mailferry config check [--config FILE]\n"
	"\n"
	"Loads the configuration (defaults, then FILE, or $CREDENTIALS_DIRECTORY/mailferry.conf\n"
	"under systemd, or ./mailferry.conf; then MAILFERRY_<KEY> environment variables),\n"
	"checks every value and prints the\n"
	"effective configuration with secrets redacted.\n"
	"Every file a key names (dkim_key_file, master_key_file, tls_ca_file,\n"
	"bounce_tls_cert, bounce_tls_key) is opened, the DKIM key and CA file are\n"
	"loaded, and master_key_file must hold exactly 32 bytes.\n"
	"Exit status 2 names the key when a key or a MAILFERRY_ variable is unknown,\n"
	"a value is bad, or a file cannot be opened or loaded.\n";

/* Opens the files, then loads the DKIM key and CA file; 0 or EXIT_USAGE. */
static int check_files(const struct config *cfg)
{
	char err[1024];
	if (config_check_files(cfg, err, sizeof(err)) < 0)
		return cli_fail(EXIT_USAGE, "config: %s", err);
	if (cfg->dkim_key_file) {
		struct dkim_signer *s = dkim_signer_new(cfg->dkim_domain, cfg->dkim_selector, cfg->dkim_key_file, err,
							sizeof(err));
		if (s == NULL)
			return cli_fail(EXIT_USAGE, "config: dkim_key_file: %s: %s", cfg->dkim_key_file, err);
		dkim_signer_free(s);
	}
	if (cfg->master_key_file) {
		unsigned char key[DKIM_MASTER_KEY_LEN];
		if (dkim_master_key_load(cfg->master_key_file, key, err, sizeof(err)) < 0)
			return cli_fail(EXIT_USAGE, "config: %s", err);
		memset(key, 0, sizeof(key));
	}
	if (cfg->tls_ca_file) {
		struct tls_ctx *t = tls_ctx_new(cfg->tls_ca_file, err, sizeof(err));
		if (t == NULL)
			return cli_fail(EXIT_USAGE, "config: tls_ca_file: %s: %s", cfg->tls_ca_file, err);
		tls_ctx_free(t);
	}
	return 0;
}

int cmd_config(int argc, char **argv)
{
	const char *path = NULL;
	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
			return fputs(usage, stdout), 0;
		return fputs(usage, stderr), EXIT_USAGE;
	}
	int rc = cli_config_opts(argc - 1, argv + 1, usage, &path);
	if (rc >= 0)
		return rc;
	struct config cfg;
	if (cli_load_config(&cfg, path) != 0)
		return EXIT_USAGE;
	if (check_files(&cfg) != 0) {
		config_cleanup(&cfg);
		return EXIT_USAGE;
	}
	config_print(&cfg, stdout);
	config_cleanup(&cfg);
	return 0;
}
