/*
 * cli.h - the mailferry command line: one function per command.
 *
 * Each cmd_* gets the arguments after the command name (argv[0] is the
 * command) and returns the process exit status: 0 success, 1 runtime
 * error, 2 usage or configuration error (INTERFACE.md "Commands").
 */
#ifndef MF_CLI_H
#define MF_CLI_H

#include <stddef.h>
#include <stdio.h>

struct config;

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_suppressions(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_sink(int argc, char **argv);
int cmd_domains(int argc, char **argv);

/* The credential name of the configuration file under systemd. */
#define CLI_CONFIG_CREDENTIAL "mailferry.conf"
/*
 * The configuration file to read: path when given (--config); else
 * $CREDENTIALS_DIRECTORY/mailferry.conf when systemd passed it with
 * LoadCredential= (deploy/mailferry.service), written into buf; else NULL,
 * which config_load() turns into ./mailferry.conf if present.
 */
const char *cli_config_path(const char *path, char *buf, size_t bufsz);
/*
 * Loads the configuration (path NULL: cli_config_path's default) and sets
 * up logging from it.  Returns 0, or prints the error and returns EXIT_USAGE.
 */
int cli_load_config(struct config *cfg, const char *path);
/*
 * The options of a command that takes only --config/-c and --help/-h:
 * *path from -c.  Returns -1 to go on, or the exit code to return (0 after
 * --help, EXIT_USAGE after another option), usage printed.  Operands are
 * left to the caller (optind).
 */
int cli_config_opts(int argc, char **argv, const char *usage, const char **path);
/* The API's URL from http_listen (0.0.0.0 / [::] become loopback), for
 * the commands that talk to the API (send, domains). */
void cli_api_default_url(const struct config *cfg, char *out, size_t outsz);
/* Prints "mailferry: <msg>" to stderr and returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
