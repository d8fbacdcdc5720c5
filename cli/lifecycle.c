/*
 * lifecycle.c - SIGHUP reload and the shutdown watchdog (see lifecycle.h).
 */
#include "cli/lifecycle.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/config.h"
#include "util/limits.h"
#include "util/log.h"

int lifecycle_reload(const char *config_path)
{
	struct config cfg;
	char err[512];
	if (config_load(&cfg, config_path, err, sizeof(err)) < 0) {
		config_cleanup(&cfg);
		log_error("event=reload_failed error=\"%s\" note=\"keeping the running configuration\"", err);
		return -1;
	}
	enum mf_log_level level = MF_LOG_INFO;
	log_level_parse(cfg.log_level, &level);
	log_setup(level, strcmp(cfg.log_format, "json") == 0);
	log_set_recipients(cfg.log_recipients);
	log_info("event=reloaded log_level=%s log_format=%s log_recipients=%s"
		 " note=\"other keys take effect on restart\"",
		 cfg.log_level, cfg.log_format, cfg.log_recipients ? "yes" : "no");
	config_cleanup(&cfg);
	return 0;
}

static void *watchdog_main(void *arg)
{
	long grace = *(long *)arg;
	struct timespec ts = { .tv_sec = grace + MF_SHUTDOWN_MARGIN, .tv_nsec = 0 };
	while (nanosleep(&ts, &ts) != 0)
		;
	log_error("event=shutdown_grace_exceeded grace=%ld note=\"exiting; unfinished leases expire and are retried\"",
		  grace);
	_exit(1);
	return NULL;
}

void lifecycle_watchdog_start(long grace_secs)
{
	static long grace;
	pthread_t t;
	grace = grace_secs > 0 ? grace_secs : 1;
	if (pthread_create(&t, NULL, watchdog_main, &grace) == 0)
		pthread_detach(t);
}
