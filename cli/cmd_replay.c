/*
 * cmd_replay.c - "mailferry replay": requeue failed, bounced or deferred
 * recipients, by message id or by filter, straight against the database
 * (same configuration as serve; db/replay.h does the work in batches).
 *
 * The events record requested_by = "cli".  On a terminal, a long replay
 * shows its progress on stderr.  Exit 0 done, 1 runtime error (batches
 * committed before it stay committed; running again continues), 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "db/db.h"
#include "db/replay.h"
#include "util/config.h"
#include "util/uuid.h"

static const char usage[] =
	"usage: mailferry replay MESSAGE_ID... [--dry-run] [--json] [--config FILE]\n"
	"       mailferry replay --status failed|bounced|deferred[,...] [--since T] [--until T]\n"
	"                        [--domain D] [--tag TAG] [--dry-run] [--json] [--config FILE]\n"
	"\n"
	"Puts recipients back in the queue for a new attempt now: the failed, bounced\n"
	"and deferred recipients of the given messages, or every recipient matching the\n"
	"filter (status set, message created since/until T, recipient domain, tag).\n"
	"T is an RFC 3339 time (2026-11-28T00:00:00Z) or a duration ago (24h, 7d).\n"
	"The attempt counter continues; an event message.requeued records the replay.\n"
	"Suppressed addresses and messages whose body has expired are skipped and counted.\n"
	"Replaying the same filter twice is harmless: requeued recipients no longer match.\n"
	"--dry-run  count what would be requeued (would_requeue) and show a sample; change nothing\n"
	"--json     one JSON object on stdout\n";

struct replay_opts {
	const char *config;
	unsigned statuses;
	char since[64], until[64];
	const char *domain, *tag;
	int has_since, has_until, dry_run, json;
};

struct progress {
	long total;
	int tty;
};

static void on_progress(const struct db_replay_result *r, void *arg)
{
	struct progress *p = arg;
	if (p->tty)
		fprintf(stderr, "\rreplay: %ld/%ld recipients processed, %ld requeued", r->matched, p->total,
			r->requeued);
}

static void print_sample(const struct db_replay_sample *s, void *arg)
{
	int *n = arg;
	if ((*n)++ == 0)
		printf("\n%-36s  %-32s  %-9s  %s\n", "MESSAGE", "RECIPIENT", "STATUS", "CREATED");
	char rc[CLI_CELL_MAX];
	printf("%-36s  %s  %-9s  %s\n", s->message_id, cli_cell(s->recipient, 32, rc, sizeof(rc)), s->status,
	       s->created_at);
}

static void json_sample(const struct db_replay_sample *s, void *arg)
{
	int *n = arg;
	fputs((*n)++ ? "," : "", stdout);
	printf("{\"message_id\":");
	cli_json_str(stdout, s->message_id);
	printf(",\"recipient\":");
	cli_json_str(stdout, s->recipient);
	printf(",\"status\":\"%s\"}", s->status);
}

static void add(struct db_replay_result *sum, const struct db_replay_result *r)
{
	sum->matched += r->matched;
	sum->requeued += r->requeued;
	sum->skipped_suppressed += r->skipped_suppressed;
	sum->skipped_expired += r->skipped_expired;
	sum->batches += r->batches;
}

/* What a dry run would requeue: the matches that are not skipped. */
static long would_requeue(const struct db_replay_result *r)
{
	return r->matched - r->skipped_suppressed - r->skipped_expired;
}

/* The counts; a dry run's JSON carries would_requeue, the same number as its text. */
static void print_result(const struct replay_opts *o, const struct db_replay_result *r)
{
	if (o->json) {
		printf("{\"matched\":%ld,\"requeued\":%ld,", r->matched, r->requeued);
		if (o->dry_run)
			printf("\"would_requeue\":%ld,", would_requeue(r));
		printf("\"skipped_suppressed\":%ld,\"skipped_expired\":%ld,\"dry_run\":%s}\n", r->skipped_suppressed,
		       r->skipped_expired, o->dry_run ? "true" : "false");
		return;
	}
	printf("matched:            %ld\n", r->matched);
	printf("%s %ld\n", o->dry_run ? "would requeue:     " : "requeued:          ",
	       o->dry_run ? would_requeue(r) : r->requeued);
	printf("skipped suppressed: %ld\n", r->skipped_suppressed);
	printf("skipped expired:    %ld\n", r->skipped_expired);
}

/* Dry run of a filter: counts plus a sample. */
static int dry_run(struct db_pool *pool, const struct replay_opts *o, struct db_replay_filter *f)
{
	char err[512];
	struct db_replay_result r;
	int n = 0;
	if (o->json) {
		printf("{\"sample\":[");
		if (db_replay_count(pool, f, 10, json_sample, &n, &r, err, sizeof(err)) < 0) {
			printf("]}\n");
			return cli_fail(EXIT_RUNTIME, "replay: %s", err);
		}
		printf("],\"matched\":%ld,\"requeued\":0,\"would_requeue\":%ld,\"skipped_suppressed\":%ld,"
		       "\"skipped_expired\":%ld,\"dry_run\":true}\n",
		       r.matched, would_requeue(&r), r.skipped_suppressed, r.skipped_expired);
		return 0;
	}
	/* The counts come first so that the sample table follows them. */
	if (db_replay_count(pool, f, 0, NULL, NULL, &r, err, sizeof(err)) < 0)
		return cli_fail(EXIT_RUNTIME, "replay: %s", err);
	print_result(o, &r);
	if (db_replay_count(pool, f, 10, print_sample, &n, &r, err, sizeof(err)) < 0)
		return cli_fail(EXIT_RUNTIME, "replay: %s", err);
	return 0;
}

static int replay_filter(struct db_pool *pool, const struct replay_opts *o, struct db_replay_filter *f)
{
	char err[512];
	struct db_replay_result r;
	if (o->dry_run)
		return dry_run(pool, o, f);
	struct progress p = { 0, !o->json && isatty(STDERR_FILENO) };
	if (p.tty && db_replay_count(pool, f, 0, NULL, NULL, &r, err, sizeof(err)) == 0)
		p.total = r.matched;
	int rc = db_replay_run(pool, f, "cli", 0, on_progress, &p, &r, err, sizeof(err));
	if (p.tty && r.batches > 0)
		fputc('\n', stderr);
	if (rc < 0) {
		print_result(o, &r);
		return cli_fail(EXIT_RUNTIME, "replay: stopped after %ld batches: %s", r.batches, err);
	}
	print_result(o, &r);
	return 0;
}

static int replay_messages(struct db_pool *pool, const struct replay_opts *o, int argc, char **argv)
{
	char err[512];
	struct db_replay_result sum = { 0 }, r;
	int rc = 0;
	for (int i = 0; i < argc; i++) {
		long long owner;
		int found = db_replay_message_owner(pool, argv[i], &owner, err, sizeof(err));
		if (found < 0)
			return cli_fail(EXIT_RUNTIME, "replay: %s", err);
		if (found == 0) {
			rc = cli_fail(EXIT_RUNTIME, "replay: no such message %s", argv[i]);
			continue;
		}
		struct db_replay_filter f = { .statuses = DB_REPLAY_ALL, .message_id = argv[i] };
		int ok = o->dry_run ? db_replay_count(pool, &f, 0, NULL, NULL, &r, err, sizeof(err)) :
				      db_replay_run(pool, &f, "cli", 0, NULL, NULL, &r, err, sizeof(err));
		if (ok < 0)
			return cli_fail(EXIT_RUNTIME, "replay: %s: %s", argv[i], err);
		add(&sum, &r);
	}
	print_result(o, &sum);
	return rc;
}

/* Parses "failed,bounced" into bits; -1 on an unknown status. */
static int parse_statuses(const char *s, unsigned *bits)
{
	static const char *names[] = { "failed", "bounced", "deferred" };
	for (const char *p = s; *p;) {
		size_t n = strcspn(p, ",");
		size_t k = 0;
		while (k < 3 && !(strlen(names[k]) == n && strncmp(p, names[k], n) == 0))
			k++;
		if (k == 3)
			return -1;
		*bits |= 1u << k; /* DB_REPLAY_FAILED, _BOUNCED, _DEFERRED */
		p += n;
		if (*p == ',')
			p++;
	}
	return *bits ? 0 : -1;
}

int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "status", required_argument, NULL, 's' },
		{ "since", required_argument, NULL, 'S' },  { "until", required_argument, NULL, 'U' },
		{ "domain", required_argument, NULL, 'd' }, { "tag", required_argument, NULL, 't' },
		{ "dry-run", no_argument, NULL, 'n' },      { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
	};
	struct replay_opts o = { 0 };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:S:U:d:t:njh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 's':
			if (parse_statuses(optarg, &o.statuses) < 0)
				return cli_fail(EXIT_USAGE, "replay: --status takes failed, bounced, deferred");
			break;
		case 'S':
			if (cli_time_arg(optarg, o.since, sizeof(o.since)) < 0)
				return cli_fail(EXIT_USAGE, "replay: --since: not a time or duration: %s", optarg);
			o.has_since = 1;
			break;
		case 'U':
			if (cli_time_arg(optarg, o.until, sizeof(o.until)) < 0)
				return cli_fail(EXIT_USAGE, "replay: --until: not a time or duration: %s", optarg);
			o.has_until = 1;
			break;
		case 'd': o.domain = optarg; break;
		case 't': o.tag = optarg; break;
		case 'n': o.dry_run = 1; break;
		case 'j': o.json = 1; break;
		case 'h': return fputs(usage, stdout), 0;
		default: return fputs(usage, stderr), EXIT_USAGE;
		}
	}
	int nids = argc - optind;
	int filtered = o.statuses || o.has_since || o.has_until || o.domain || o.tag;
	if ((nids == 0) == (o.statuses == 0) || (nids > 0 && filtered)) {
		fputs("mailferry: replay: give message ids, or --status with optional filters\n", stderr);
		return fputs(usage, stderr), EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++)
		if (!uuid_valid(argv[i]))
			return cli_fail(EXIT_USAGE, "replay: not a message id: %s", argv[i]);

	struct config cfg;
	if (cli_load_config(&cfg, o.config) != 0)
		return EXIT_USAGE;
	struct db_pool *pool = db_pool_new(cfg.database_url, 1);
	int rc;
	if (nids > 0) {
		rc = replay_messages(pool, &o, nids, argv + optind);
	} else {
		struct db_replay_filter f = {
			.statuses = o.statuses,
			.created_after = o.has_since ? o.since : NULL,
			.created_before = o.has_until ? o.until : NULL,
			.domain = o.domain,
			.tag = o.tag,
		};
		rc = replay_filter(pool, &o, &f);
	}
	db_pool_free(pool);
	config_cleanup(&cfg);
	return rc;
}
