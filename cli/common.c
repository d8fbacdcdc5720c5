/*
 * common.c - helpers every command shares: configuration loading with
 * logging set up from it, and uniform error reporting.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/config.h"
#include "util/log.h"

int cli_fail(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("mailferry: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

const char *cli_config_path(const char *path, char *buf, size_t bufsz)
{
	if (path != NULL)
		return path;
	/* systemd.exec(5) "Credentials": LoadCredential=mailferry.conf:... */
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	if (creds == NULL || *creds == '\0')
		return NULL;
	int n = snprintf(buf, bufsz, "%s/%s", creds, CLI_CONFIG_CREDENTIAL);
	return n > 0 && (size_t)n < bufsz && access(buf, F_OK) == 0 ? buf : NULL;
}

int cli_load_config(struct config *cfg, const char *path)
{
	char err[512], cred[4096];
	path = cli_config_path(path, cred, sizeof(cred));
	if (config_load(cfg, path, err, sizeof(err)) < 0) {
		config_cleanup(cfg);
		return cli_fail(EXIT_USAGE, "config: %s", err);
	}
	enum mf_log_level level = MF_LOG_INFO;
	log_level_parse(cfg->log_level, &level);
	log_setup(level, strcmp(cfg->log_format, "json") == 0);
	log_set_recipients(cfg->log_recipients);
	return 0;
}

int cli_config_opts(int argc, char **argv, const char *usage, const char **path)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		if (c == 'c')
			*path = optarg;
		else if (c == 'h')
			return fputs(usage, stdout), 0;
		else
			return fputs(usage, stderr), EXIT_USAGE;
	}
	return -1;
}

/* The default API URL from http_listen. */
void cli_api_default_url(const struct config *cfg, char *out, size_t outsz)
{
	char host[256];
	int port = 8025;
	if (config_parse_hostport(cfg->http_listen, host, sizeof(host), &port) < 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (strcmp(host, "0.0.0.0") == 0 || *host == '\0')
		snprintf(host, sizeof(host), "127.0.0.1");
	if (strchr(host, ':'))
		snprintf(out, outsz, "http://[%s]:%d", strcmp(host, "::") == 0 ? "::1" : host, port);
	else
		snprintf(out, outsz, "http://%s:%d", host, port);
}
