/*
 * test_delivery_crash.c - crash recovery in seconds, not lease_time (issue
 * 17, point 4): "mailferry serve" with the default lease_time (10 minutes)
 * delivers to mailferry's own slow sink ("mailferry sink --data-delay",
 * which counts messages and duplicates by Message-ID); it is killed with
 * SIGKILL while deliveries are in flight and started again.  The restarted
 * process frees the leases of the dead one at once (its registered
 * connection is gone), so every recipient is delivered within 30 s of the
 * restart, and only what was in flight at the kill reaches the sink twice.
 * And a live process whose connection drops keeps its leases.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "delivery_helpers.h"
#include "harness.h"
#include "th_smtp.h"
#include "util/xmalloc.h"

struct counting_sink {
	pid_t pid;
	int port;
	char *dir;
	char *stats;  /* the counters, rewritten every second */
};

/* Starts "mailferry sink --data-delay DELAY --stats FILE" on a free port. */
static void counting_sink_start(struct counting_sink *cs, const char *delay)
{
	cs->port = th_free_port();
	cs->dir = th_tmpdir("crashsink");
	cr_assert_not_null(cs->dir);
	cs->stats = xasprintf("%s/stats", cs->dir);
	char *cmd = xasprintf("exec %s sink --listen 127.0.0.1:%d --data-delay %s --stats %s >/dev/null 2>&1", th_bin(),
			      cs->port, delay, cs->stats);
	cs->pid = fork();
	if (cs->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	cr_assert_gt(cs->pid, 0);
	cr_assert_eq(th_smtp_wait_port(cs->port, 10000), 0, "the sink did not listen on %d", cs->port);
}

static void counting_sink_stop(struct counting_sink *cs)
{
	kill(cs->pid, SIGTERM);
	waitpid(cs->pid, NULL, 0);
	th_rmrf(cs->dir);
	free(cs->dir);
	free(cs->stats);
}

/* The value of counter key in the sink's stats file; -1 before the first write. */
static long sink_counter(const struct counting_sink *cs, const char *key)
{
	FILE *f = fopen(cs->stats, "r");
	if (f == NULL)
		return -1;
	char line[1024] = "";
	char *got = fgets(line, sizeof(line), f);
	fclose(f);
	if (got == NULL)
		return -1;
	size_t kl = strlen(key);
	for (char *p = line; (p = strstr(p, key)) != NULL; p += kl)
		if ((p == line || p[-1] == ' ') && p[kl] == '=')
			return strtol(p + kl + 1, NULL, 10);
	return -1;
}

Test(delivery_crash, kill9_restart_delivers_all_within_seconds)
{
	/* 4 workers, each SMTP transaction held 2 s at the final dot: with
	 * N = 24 the first process needs ~12 s, so the kill always finds
	 * work in flight and work not yet started. */
	enum { N = 24 };
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct counting_sink cs;
	counting_sink_start(&cs, "2s");
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", cs.port);
	/* lease_time is not set: the default, 10 minutes. */
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_WORKERS=4",
			      "MAILFERRY_LOG_LEVEL=info", NULL };
	insert_messages(url, N, "c@crash.test");
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	/* Kill once the first transactions were answered and the next ones
	 * hold their DATA at the sink. */
	long d = wait_count(url, 4, 30000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	cr_assert_geq(d, 4, "only %ld delivered before the kill", d);
	long sending = wait_count(url, 1, 10000, "SELECT count(*) FROM recipients WHERE status = 'sending'");
	cr_assert_geq(sending, 1, "nothing in flight to kill");
	kill(p->pid, SIGKILL);
	long t_kill = th_now_ms();
	int st;
	waitpid(p->pid, &st, 0);
	p->pid = 0;
	th_proc_free(p);
	long at_kill = ql(url, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	long leased = ql(url, "SELECT count(*) FROM recipients WHERE status = 'sending'");
	cr_assert_gt(leased, 0, "nothing was leased at the kill; nothing tested");
	cr_assert_lt(at_kill, N, "everything was delivered before the kill; nothing tested");
	/* The dead process's leases run for ten more minutes. */
	cr_assert_eq(ql(url, "SELECT count(*) FROM recipients WHERE status = 'sending'"
			     " AND lease_expires_at < now() + interval '9 minutes'"), 0);

	/* The dead process's owner prefix: its claims are "prefix:seq". */
	char *dead = q(url, "SELECT min(regexp_replace(lease_owner, ':[0-9]+$', '')) FROM recipients"
			    " WHERE status = 'sending'");

	long t_restart = th_now_ms();
	p = th_serve_start(url, env);
	cr_assert_not_null(p);
	/* Until every recipient is delivered, noting when the dead owner's
	 * leases were freed (for the figures). */
	long done = -1, freed_ms = -1;
	while (th_now_ms() - t_restart < 30000) {
		done = ql(url, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
		if (freed_ms < 0 && ql(url, "SELECT count(*) FROM recipients WHERE status = 'sending'"
					    " AND starts_with(lease_owner, '%s:')", dead) == 0)
			freed_ms = th_now_ms() - t_kill;
		if (done >= N)
			break;
		usleep(50000);
	}
	long took = th_now_ms() - t_restart;
	free(dead);
	char *states = q(url, "SELECT string_agg(status || ':' || n, ',') FROM"
			      " (SELECT status, count(*) n FROM recipients GROUP BY 1 ORDER BY 1) x");
	cr_assert_eq(done, N, "delivered %ld of %d within 30 s of the restart (%s)", done, N, states);
	free(states);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	cr_assert_eq(ql(url, "SELECT count(*) FROM messages WHERE status = 'delivered'"), N);

	/* The sink counts by Message-ID; its stats file is rewritten every
	 * second, so wait for it to show every message once. */
	long msgs = -1, dups = -1;
	for (long t0 = th_now_ms(); th_now_ms() - t0 < 30000; usleep(100000)) {
		msgs = sink_counter(&cs, "messages");
		dups = sink_counter(&cs, "duplicates");
		if (msgs >= 0 && dups >= 0 && msgs - dups >= N)
			break;
	}
	fprintf(stderr, "crash: delivered_at_kill=%ld leased_at_kill=%ld kill_to_leases_freed_ms=%ld"
			" restart_to_all_delivered_ms=%ld sink_messages=%ld sink_duplicates=%ld\n",
		at_kill, leased, freed_ms, took, msgs, dups);
	cr_assert_eq(msgs - dups, N, "the sink saw %ld distinct messages of %d", msgs - dups, N);
	/* At-least-once: only what was in flight at the kill may repeat:
	 * the rows leased then, of which at most one job per worker (here
	 * one message each) had reached the sink. */
	cr_assert_leq(dups, leased, "duplicates %ld > rows leased at the kill %ld", dups, leased);
	cr_assert_leq(dups, 4, "duplicates %ld > SMTP transactions in flight (4 workers)", dups);
	counting_sink_stop(&cs);
	th_db_drop(url);
	free(url);
}

/* The other side: a live process whose registered connection drops (its
 * backend terminated, as by an administrator or a network cut) registers
 * again within the grace, and a second process's reaper, which judges it
 * at its start and every round, leaves its leases alone: nothing is
 * reaped (every recipient delivered at its first attempt) and nothing
 * reaches the sink twice. */
Test(delivery_crash, owner_connection_drop_keeps_its_leases)
{
	enum { N = 16 };
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct counting_sink cs;
	counting_sink_start(&cs, "2s");
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", cs.port);
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_WORKERS=4",
			      "MAILFERRY_LOG_LEVEL=info", NULL };
	insert_messages(url, N, "c@drop.test");
	struct th_proc *a = th_serve_start(url, env);
	cr_assert_not_null(a);
	long sending = wait_count(url, 4, 30000, "SELECT count(*) FROM recipients WHERE status = 'sending'");
	cr_assert_geq(sending, 4, "nothing in flight");
	char last[64];
	cr_assert_eq(th_sql_wait(url, "SELECT count(*) FROM queue_owners WHERE mf_advisory_lock_held(lock_key)", "1",
				 30000, last, sizeof(last)), 0, "registered owners: %s", last);
	char *old = q(url, "SELECT backend_pid FROM queue_owners");
	char *owner = q(url, "SELECT owner FROM queue_owners");
	free(q(url, "SELECT pg_terminate_backend(%s)", old));
	/* The second process starts while the first one's lock is gone. */
	struct th_proc *b = th_serve_start(url, env);
	cr_assert_not_null(b);
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM queue_owners WHERE owner = '%s' AND backend_pid <> %s"
		 " AND mf_advisory_lock_held(lock_key)", owner, old);
	cr_assert_eq(th_sql_wait(url, sql, "1", 30000, last, sizeof(last)), 0, "%s did not register again", owner);
	long done = wait_count(url, N, 60000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	cr_assert_eq(done, N, "delivered %ld of %d", done, N);
	cr_assert_eq(ql(url, "SELECT count(*) FROM recipients WHERE attempts <> 1"), 0,
		     "a live owner's lease was reaped and tried again");
	cr_assert_eq(th_proc_stop(a, 10000), 0);
	cr_assert_eq(th_proc_stop(b, 10000), 0);
	th_proc_free(a);
	th_proc_free(b);
	/* A graceful stop deletes the registration. */
	cr_assert_eq(ql(url, "SELECT count(*) FROM queue_owners"), 0);
	long msgs = -1, dups = -1;
	for (long t0 = th_now_ms(); th_now_ms() - t0 < 30000; usleep(100000)) {
		msgs = sink_counter(&cs, "messages");
		dups = sink_counter(&cs, "duplicates");
		if (msgs >= N)
			break;
	}
	fprintf(stderr, "drop: sink_messages=%ld sink_duplicates=%ld\n", msgs, dups);
	cr_assert_eq(msgs, N);
	cr_assert_eq(dups, 0);
	free(old);
	free(owner);
	counting_sink_stop(&cs);
	th_db_drop(url);
	free(url);
}
