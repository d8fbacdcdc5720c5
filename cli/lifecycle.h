/*
 * lifecycle.h - the parts of "mailferry serve"'s signal handling that are
 * not component start/stop: SIGHUP reload and the shutdown watchdog.
 *
 * lifecycle_reload() re-reads the configuration (file and environment) and
 * applies what can change safely at run time: log_level and log_format.
 * Other keys need a restart; it logs that.  Returns 0, or -1 when the new
 * configuration is invalid (the old one stays in force, the error is logged).
 *
 * lifecycle_watchdog_start() is the backstop behind the components' own
 * shutdown_grace handling: each component stops within grace_secs; if the
 * process is still alive MF_SHUTDOWN_MARGIN seconds later, the watchdog
 * logs and exits with status 1 (unfinished deliveries keep their leases,
 * which expire and are handed back by the lease reaper: nothing is lost).
 */
#ifndef MF_CLI_LIFECYCLE_H
#define MF_CLI_LIFECYCLE_H

int lifecycle_reload(const char *config_path);
void lifecycle_watchdog_start(long grace_secs);

#endif
