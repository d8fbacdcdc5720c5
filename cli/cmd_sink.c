/*
 * cmd_sink.c - "mailferry sink": a capture SMTP server for development.
 *
 * Accepts every recipient and writes each message into DIR as
 * <time>-<session>-<n>.eml, with X-Mailferry-Envelope-From and one
 * X-Mailferry-Envelope-To per recipient prepended.  A file appears
 * atomically (written under a dot name, then renamed), and only after it
 * is complete does the client get its 250.  Runs until SIGTERM/SIGINT.
 * Never point it at the Internet: it accepts mail for any domain.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "bounce/smtp_server.h"
#include "util/config.h"
#include "util/log.h"

static const char usage[] =
	"usage: mailferry sink --listen HOST:PORT --dir DIR [--max-size SIZE] [--hostname NAME]\n"
	"                      [--tls-cert PEM --tls-key PEM]\n"
	"\n"
	"Runs a capture SMTP server for development: it accepts mail for every\n"
	"recipient and writes each message into DIR as an .eml file, with\n"
	"X-Mailferry-Envelope-From and X-Mailferry-Envelope-To headers prepended.\n"
	"--max-size limits a message (default 64MiB).  With --tls-cert and --tls-key\n"
	"it offers STARTTLS.  SIGTERM or SIGINT stops it.\n"
	"Do not expose it to the Internet: it accepts anything.\n";

#define SINK_MAX_SIZE_DEFAULT (64L * 1024 * 1024)

struct sink {
	const char *dir;
	pthread_mutex_t lock;
	unsigned long seq;
};

static int write_all(FILE *f, const char *p, size_t n)
{
	return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int sink_write(struct sink *sk, const struct smtp_server_envelope *env, const char *data, size_t len,
		      char *name, size_t namesz)
{
	pthread_mutex_lock(&sk->lock);
	unsigned long seq = ++sk->seq;
	pthread_mutex_unlock(&sk->lock);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char tmp[4096], final[4096];
	int n1 = snprintf(name, namesz, "%lld%03ld-%d-%lu.eml", (long long)ts.tv_sec, ts.tv_nsec / 1000000L,
			  (int)getpid(), seq);
	int n2 = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", sk->dir, name);
	int n3 = snprintf(final, sizeof(final), "%s/%s", sk->dir, name);
	if (n1 < 0 || (size_t)n1 >= namesz || n2 < 0 || (size_t)n2 >= sizeof(tmp) || n3 < 0 ||
	    (size_t)n3 >= sizeof(final))
		return -1;
	FILE *f = fopen(tmp, "wb");
	if (f == NULL)
		return -1;
	int rc = fprintf(f, "X-Mailferry-Envelope-From: <%s>\r\n", env->mail_from) < 0;
	for (size_t i = 0; i < env->nrcpts && rc == 0; i++)
		rc = fprintf(f, "X-Mailferry-Envelope-To: <%s>\r\n", env->rcpts[i]) < 0;
	if (rc == 0)
		rc = write_all(f, data, len);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, final) != 0)
		rc = -1;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

static void sink_on_message(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
			    struct smtp_server_reply *reply)
{
	char name[256];
	if (sink_write(arg, env, data, len, name, sizeof(name)) != 0) {
		log_error("event=sink_write_failed session=%s error=\"%s\"", env->session, strerror(errno));
		smtp_server_reply_set(reply, 451, "4.3.0 Cannot write the message, try again later");
		return;
	}
	log_info("event=sink_stored session=%s file=%s size=%zu", env->session, name, len);
	smtp_server_reply_set(reply, 250, "2.0.0 Ok: stored as %s", name);
}

int cmd_sink(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "dir", required_argument, NULL, 'd' },
		{ "max-size", required_argument, NULL, 's' },
		{ "hostname", required_argument, NULL, 'n' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *dir = NULL, *hostname = "mailferry-sink", *cert = NULL, *key = NULL;
	long max_size = SINK_MAX_SIZE_DEFAULT;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:d:s:n:C:K:h", opts, NULL)) != -1) {
		if (c == 'l')
			listen = optarg;
		else if (c == 'd')
			dir = optarg;
		else if (c == 'n')
			hostname = optarg;
		else if (c == 'C')
			cert = optarg;
		else if (c == 'K')
			key = optarg;
		else if (c == 's') {
			if (config_parse_size(optarg, &max_size) != 0 || max_size <= 0)
				return cli_fail(EXIT_USAGE, "sink: bad --max-size \"%s\"", optarg);
		} else if (c == 'h')
			return fputs(usage, stdout), 0;
		else
			return fputs(usage, stderr), EXIT_USAGE;
	}
	if (optind < argc || listen == NULL || dir == NULL)
		return fputs(usage, stderr), EXIT_USAGE;
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return cli_fail(EXIT_USAGE, "sink: --dir %s is not a directory", dir);
	const char *fmt = getenv("MAILFERRY_LOG_FORMAT");
	log_setup(MF_LOG_INFO, !(fmt && strcmp(fmt, "text") == 0));

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct sink sk = { .dir = dir };
	pthread_mutex_init(&sk.lock, NULL);
	struct smtp_server_params sp = {
		.listen = listen,
		.hostname = hostname,
		.max_message_size = (size_t)max_size,
		/* A development capture server: its clients (the local relay's
		 * workers) all share one address, so no cap per address. */
		.max_sessions_per_addr = MF_SMTP_SERVER_SESSIONS_DEFAULT,
		.tls_cert_file = cert,
		.tls_key_file = key,
		.arg = &sk,
		.on_message = sink_on_message,
	};
	char err[512];
	struct smtp_server *srv = smtp_server_new(&sp, err, sizeof(err));
	if (srv == NULL) {
		pthread_mutex_destroy(&sk.lock);
		return cli_fail(EXIT_RUNTIME, "sink: %s", err);
	}
	log_info("event=sink_listening addr=%s port=%d dir=%s", listen, smtp_server_port(srv), dir);
	int sig = 0;
	while (sigwait(&set, &sig) != 0)
		;
	log_info("event=sink_stopping signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	smtp_server_free(srv);
	pthread_mutex_destroy(&sk.lock);
	return 0;
}
