/*
 * common.c - helpers every command shares: configuration loading with
 * logging set up from it, and uniform error reporting.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

int cli_load_config(struct config *cfg, const char *path)
{
	char err[512];
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
