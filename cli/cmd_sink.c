/*
 * cmd_sink.c - "mailferry sink": option parsing and wiring of two sinks.
 *
 * With --dir it is the capture server for development, on smtpd/smtp_server.c's thread per session: accepts
 * every recipient and writes each message into DIR as
 * <time>-<session>-<n>.eml, with X-Mailferry-Envelope-From and one
 * X-Mailferry-Envelope-To per recipient prepended.  A file appears
 * atomically (written under a dot name, then renamed), and only after it
 * is complete does the client get its 250.
 *
 * Without it it is the latency and fault sink for benches (sink/sink.h):
 * one event loop, --reply-delay, --data-delay, --fault, counting messages
 * and duplicate Message-IDs without storing anything.  --reply-delay,
 * --data-delay and --fault are refused with --dir.  Both offer STARTTLS
 * with --tls-cert and --tls-key.
 *
 * Both run until SIGTERM/SIGINT.  Never point either at the Internet: they
 * accept mail for any domain.
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
#include "smtpd/smtp_server.h"
#include "sink/sink.h"
#include "util/config.h"
#include "util/log.h"

static const char usage[] =
	"usage: mailferry sink --listen HOST:PORT --dir DIR [--max-size SIZE] [--hostname NAME]\n"
	"                      [--tls-cert PEM --tls-key PEM]\n"
	"       mailferry sink [--listen ADDR[,ADDR...]] [--reply-delay DUR] [--data-delay DUR]\n"
	"                      [--data-hold N] [--fault SPEC] [--stats FILE] [--json] [--max-size SIZE] [--hostname NAME]\n"
	"                      [--tls-cert PEM --tls-key PEM]\n"
	"\n"
	"With --dir: a capture SMTP server for development.  It accepts mail for\n"
	"every recipient and writes each message into DIR as an .eml file, with\n"
	"X-Mailferry-Envelope-From and X-Mailferry-Envelope-To headers prepended.\n"
	"\n"
	"Without --dir: a latency and fault sink for benches, one event loop for\n"
	"tens of thousands of sessions.  It stores nothing; it counts sessions,\n"
	"messages, recipients, duplicates by Message-ID and TLS handshakes.\n"
	"  --listen ADDR[,ADDR...]  host:port, several allowed (default 127.0.0.1:2525)\n"
	"  --reply-delay DUR    every reply DUR after its command; pipelined commands\n"
	"                       (one read) share one delay.  DUR: 250ms, 2s, 1m\n"
	"  --data-delay DUR     the reply to the end of data DUR after it (default:\n"
	"                       the reply delay)\n"
	"  --data-hold N        hold every reply to the end of data until N sessions\n"
	"                       have been open at once, then send each after the data\n"
	"                       delay: shows how many sessions a client holds open\n"
	"  --fault SPEC         comma-separated STAGE:CODE:P%, STAGE:drop:P% or\n"
	"                       tarpit:DUR:P%; STAGE is connect, ehlo, mail, rcpt or\n"
	"                       data (the end of data); e.g.\n"
	"                       rcpt:421:5%,rcpt:450:10%,data:drop:2%,tarpit:30s:1%\n"
	"  --stats FILE         write the counters into FILE every second\n"
	"  --json               counters as JSON\n"
	"The counters go to stdout on SIGUSR1 and when SIGTERM or SIGINT stops it.\n"
	"\n"
	"Both: --tls-cert PEM --tls-key PEM offer STARTTLS (RFC 3207) with that\n"
	"certificate chain and key; the counting sink resumes TLS sessions from\n"
	"its tickets.\n"
	"\n"
	"--max-size limits a message (default 64MiB).  Do not expose it to the\n"
	"Internet: it accepts anything.\n";

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

#define SINK_LISTEN_DEFAULT "127.0.0.1:2525"

struct sink_opts {
	const char *listen, *dir, *hostname, *cert, *key, *stats, *fault_spec;
	long max_size, reply_delay_ms, data_delay_ms, data_hold;
	int json, loop_only;  /* loop_only: an option only the event loop has */
};

/* The capture server (--dir), thread per session. */
static int run_capture(const struct sink_opts *o, const sigset_t *set)
{
	if (o->loop_only)
		return cli_fail(EXIT_USAGE,
				"sink: --reply-delay, --data-delay, --data-hold, --fault, --stats and --json need the counting sink "
				"(no --dir)");
	if (strchr(o->listen, ',') != NULL)
		return cli_fail(EXIT_USAGE, "sink: --dir takes one --listen address");
	struct stat st;
	if (stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return cli_fail(EXIT_USAGE, "sink: --dir %s is not a directory", o->dir);
	struct sink sk = { .dir = o->dir };
	pthread_mutex_init(&sk.lock, NULL);
	struct smtp_server_params sp = {
		.listen = o->listen,
		.hostname = o->hostname,
		.max_message_size = (size_t)o->max_size,
		/* A development capture server: its clients (the local relay's
		 * workers) all share one address, so no cap per address. */
		.max_sessions_per_addr = MF_SMTP_SERVER_SESSIONS_DEFAULT,
		.tls_cert_file = o->cert,
		.tls_key_file = o->key,
		.arg = &sk,
		.on_message = sink_on_message,
	};
	char err[512];
	struct smtp_server *srv = smtp_server_new(&sp, err, sizeof(err));
	if (srv == NULL) {
		pthread_mutex_destroy(&sk.lock);
		return cli_fail(EXIT_RUNTIME, "sink: %s", err);
	}
	log_info("event=sink_listening addr=%s port=%d dir=%s", o->listen, smtp_server_port(srv), o->dir);
	int sig = 0;
	while (sigwait(set, &sig) != 0)
		;
	log_info("event=sink_stopping signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	smtp_server_free(srv);
	pthread_mutex_destroy(&sk.lock);
	return 0;
}

/* The latency and fault sink (sink/sink.h). */
static int run_loop(const struct sink_opts *o, const sigset_t *set)
{
	char err[512];
	struct sink_faults *faults = NULL;
	if (sink_faults_parse(o->fault_spec, &faults, err, sizeof(err)) != 0)
		return cli_fail(EXIT_USAGE, "sink: --fault: %s", err);
	struct sink_params p = {
		.listen = o->listen,
		.hostname = o->hostname,
		.reply_delay_ms = o->reply_delay_ms,
		.data_delay_ms = o->data_delay_ms,
		.data_hold = (unsigned long)o->data_hold,
		.faults = faults,
		.max_message_size = (size_t)o->max_size,
		.stats_file = o->stats,
		.json = o->json,
		.tls_cert_file = o->cert,
		.tls_key_file = o->key,
	};
	struct sink *sk = sink_new(&p, err, sizeof(err));
	if (sk == NULL) {
		sink_faults_free(faults);
		return cli_fail(EXIT_RUNTIME, "sink: %s", err);
	}
	for (size_t i = 0; i < sink_listeners(sk); i++)
		log_info("event=sink_listening port=%d reply_delay_ms=%ld data_delay_ms=%ld starttls=%s",
			 sink_port(sk, i), o->reply_delay_ms, o->data_delay_ms, o->cert ? "yes" : "no");
	int rc = sink_run(sk, set, err, sizeof(err));
	char line[512];
	if (sink_count_format(sink_counts(sk), o->json, line, sizeof(line)) == 0)
		printf("%s\n", line);
	fflush(stdout);
	sink_free(sk);
	sink_faults_free(faults);
	if (rc != 0)
		return cli_fail(EXIT_RUNTIME, "sink: %s", err);
	return 0;
}

static int parse_delay(const char *opt, const char *v, long *ms)
{
	if (sink_duration_parse(v, ms) != 0)
		return cli_fail(EXIT_USAGE, "sink: bad %s \"%s\" (e.g. 250ms, 2s)", opt, v);
	return 0;
}

/* Returns -1 to go on, or the exit code. */
static int parse_opts(int argc, char **argv, struct sink_opts *o)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "dir", required_argument, NULL, 'd' },
		{ "max-size", required_argument, NULL, 's' },
		{ "hostname", required_argument, NULL, 'n' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "reply-delay", required_argument, NULL, 'r' },
		{ "data-delay", required_argument, NULL, 'D' },
		{ "data-hold", required_argument, NULL, 'H' },
		{ "fault", required_argument, NULL, 'f' },
		{ "stats", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:d:s:n:C:K:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'd': o->dir = optarg; break;
		case 'n': o->hostname = optarg; break;
		case 'C': o->cert = optarg; break;
		case 'K': o->key = optarg; break;
		case 'S': o->stats = optarg, o->loop_only = 1; break;
		case 'j': o->json = 1, o->loop_only = 1; break;
		case 'f': o->fault_spec = optarg, o->loop_only = 1; break;
		case 'r':
			o->loop_only = 1;
			if (parse_delay("--reply-delay", optarg, &o->reply_delay_ms) != 0)
				return EXIT_USAGE;
			break;
		case 'D':
			o->loop_only = 1;
			if (parse_delay("--data-delay", optarg, &o->data_delay_ms) != 0)
				return EXIT_USAGE;
			break;
		case 'H': {
			char *end = NULL;
			errno = 0;
			o->loop_only = 1;
			o->data_hold = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || o->data_hold < 1 || o->data_hold > 1000000)
				return cli_fail(EXIT_USAGE, "sink: bad --data-hold \"%s\" (a number of sessions, 1 to 1000000)",
						optarg);
			break;
		}
		case 's':
			if (config_parse_size(optarg, &o->max_size) != 0 || o->max_size <= 0)
				return cli_fail(EXIT_USAGE, "sink: bad --max-size \"%s\"", optarg);
			break;
		case 'h': return fputs(usage, stdout), 0;
		default: return fputs(usage, stderr), EXIT_USAGE;
		}
	}
	if (optind < argc)
		return fputs(usage, stderr), EXIT_USAGE;
	if ((o->cert == NULL) != (o->key == NULL))
		return cli_fail(EXIT_USAGE, "sink: --tls-cert and --tls-key go together");
	if (o->listen == NULL)
		o->listen = SINK_LISTEN_DEFAULT;
	return -1;
}

int cmd_sink(int argc, char **argv)
{
	struct sink_opts o = { .hostname = "mailferry-sink", .max_size = SINK_MAX_SIZE_DEFAULT };
	int rc = parse_opts(argc, argv, &o);
	if (rc >= 0)
		return rc;
	/* The options are checked before anything is bound. */
	if (o.fault_spec != NULL) {
		char err[512];
		struct sink_faults *f = NULL;
		if (sink_faults_parse(o.fault_spec, &f, err, sizeof(err)) != 0)
			return cli_fail(EXIT_USAGE, "sink: --fault: %s", err);
		sink_faults_free(f);
	}
	const char *fmt = getenv("MAILFERRY_LOG_FORMAT");
	log_setup(MF_LOG_INFO, !(fmt && strcmp(fmt, "text") == 0));

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (o.dir == NULL)
		sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (o.dir != NULL)
		return run_capture(&o, &set);
	return run_loop(&o, &set);
}
