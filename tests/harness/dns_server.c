/*
 * dns_server.c - NSD for tests (see dns_server.h).
 *
 * NSD runs in the foreground (-d) as a child with a configuration of its
 * own in a temporary directory: no chroot, no user switch, no database
 * file, one server process, UDP and TCP on 127.0.0.1:PORT.  Every zone
 * also carries "_serial TXT <serial>", which is how the harness knows
 * that NSD is up, and that a reload has taken effect, through the same
 * resolver the code under test uses.
 */
#include "dns_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns/dns.h"
#include "harness.h"
#include "util/xmalloc.h"

struct th_dns {
	pid_t pid;
	int port;
	char *dir;
	char servers[32];
	int n;
	char *origin[TH_DNS_ZONES_MAX];
	long serial[TH_DNS_ZONES_MAX];
	time_t mtime[TH_DNS_ZONES_MAX];
};

static int write_zone(struct th_dns *d, int i, const char *records)
{
	char *path = xasprintf("%s/%s.zone", d->dir, d->origin[i]);
	FILE *f = fopen(path, "w");
	if (!f) {
		free(path);
		return -1;
	}
	const char *o = d->origin[i];
	char *rec = th_ip_text(records); /* this run's addresses (harness.h) */
	fprintf(f,
		"$ORIGIN %s.\n$TTL 60\n"
		"@ IN SOA ns.%s. hostmaster.%s. %ld 3600 600 86400 60\n"
		"@ IN NS ns.%s.\n"
		"_serial IN TXT \"%ld\"\n%s\n",
		o, o, o, d->serial[i], o, d->serial[i], rec);
	free(rec);
	int rc = fclose(f);
	/* NSD reloads a zone whose mtime changed (nsd(8), SIGHUP); two
	 * writes within one second must still differ. */
	d->mtime[i] = d->mtime[i] ? d->mtime[i] + 1 : time(NULL) - 100;
	struct timespec ts[2] = { { d->mtime[i], 0 }, { d->mtime[i], 0 } };
	utimensat(AT_FDCWD, path, ts, 0);
	free(path);
	return rc == 0 ? 0 : -1;
}

/* Waits until the zone's _serial TXT says serial (bounded: ~10 s). */
/* NSD's current main process, from its pidfile: a reload forks a new main
 * and the old one exits (nsd(8)), so the pid we started (timeout(1)'s) is
 * not the one to signal after the first reload.  0 when unknown. */
static pid_t nsd_main_pid(const struct th_dns *d)
{
	char *path = xasprintf("%s/nsd.pid", d->dir);
	FILE *f = fopen(path, "r");
	free(path);
	long pid = 0;
	if (f) {
		if (fscanf(f, "%ld", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid > 0 && kill((pid_t)pid, 0) == 0 ? (pid_t)pid : 0;
}

static int wait_serial(struct th_dns *d, int i)
{
	char err[200], name[300], want[32];
	struct dns_resolver *r = dns_resolver_new(d->servers, err, sizeof(err));
	if (!r)
		return -1;
	dns_resolver_set_timeout(r, 500);
	snprintf(name, sizeof(name), "_serial.%s", d->origin[i]);
	snprintf(want, sizeof(want), "%ld", d->serial[i]);
	struct dns_txt_result *t = xmalloc(sizeof(*t));
	int ok = 0;
	for (int tries = 0; tries < 200 && !ok; tries++) {
		if (dns_lookup_txt(r, name, t, err, sizeof(err)) == DNS_OK && strcmp(t->rec[0], want) == 0) {
			ok = 1;
			break;
		}
		/* timeout(1) ends with the main process a reload replaced; NSD
		 * lives on in the new one. */
		if (d->pid > 0 && waitpid(d->pid, NULL, WNOHANG) == d->pid)
			d->pid = -1;
		if (d->pid <= 0 && nsd_main_pid(d) == 0)
			break;
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	free(t);
	dns_resolver_free(r);
	return ok ? 0 : -1;
}

struct th_dns *th_dns_start(const struct th_dns_zone *zones, int n)
{
	if (n > TH_DNS_ZONES_MAX)
		return NULL;
	struct th_dns *d = xcalloc(1, sizeof(*d));
	d->dir = th_tmpdir("nsd");
	d->port = th_free_port();
	snprintf(d->servers, sizeof(d->servers), "127.0.0.1:%d", d->port);
	d->n = n;
	char *conf = xasprintf("%s/nsd.conf", d->dir);
	FILE *f = fopen(conf, "w");
	if (!f) {
		free(conf);
		th_dns_stop(d);
		return NULL;
	}
	fprintf(f,
		"server:\n"
		"  ip-address: 127.0.0.1@%d\n"
		"  port: %d\n"
		"  do-ip6: no\n"
		"  username: \"\"\n"
		"  chroot: \"\"\n"
		"  zonesdir: \"%s\"\n"
		"  database: \"\"\n"
		"  pidfile: \"%s/nsd.pid\"\n"
		"  xfrdfile: \"%s/xfrd.state\"\n"
		"  xfrdir: \"%s\"\n"
		"  zonelistfile: \"%s/zone.list\"\n"
		"  logfile: \"%s/nsd.log\"\n"
		"  server-count: 1\n"
		"  verbosity: 1\n"
		"  reuseport: no\n"
		"remote-control:\n"
		"  control-enable: no\n",
		d->port, d->port, d->dir, d->dir, d->dir, d->dir, d->dir, d->dir);
	for (int i = 0; i < n; i++) {
		d->origin[i] = xstrdup(zones[i].origin);
		d->serial[i] = 1;
		fprintf(f, "zone:\n  name: \"%s.\"\n  zonefile: \"%s.zone\"\n", zones[i].origin, zones[i].origin);
		if (write_zone(d, i, zones[i].records) < 0) {
			fclose(f);
			free(conf);
			th_dns_stop(d);
			return NULL;
		}
	}
	fclose(f);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		/* timeout(1): NSD does not outlive a crashed test by much. */
		execl("/usr/bin/timeout", "timeout", "120", "/usr/sbin/nsd", "-d", "-c", conf, (char *)NULL);
		_exit(127);
	}
	free(conf);
	d->pid = pid;
	if (n > 0 && wait_serial(d, 0) < 0) {
		char *log = NULL;
		th_run(&log, "cat '%s/nsd.log' 2>&1 | tail -5", d->dir);
		fprintf(stderr, "th_dns_start: nsd did not come up on %s: %s\n", d->servers, log ? log : "");
		free(log);
		th_dns_stop(d);
		return NULL;
	}
	return d;
}

#define OLD_NSD_MAX 16

/* 1 when pid is a live (not zombie) NSD server process ("nsd: server N";
 * the main and xfrd processes outlive a reload) started with d's
 * configuration: its command line names d->dir. */
static int is_our_nsd(const struct th_dns *d, pid_t pid)
{
	char path[64], stat[512], cmd[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	const char *rp = strrchr(stat, ')');
	if (!rp || strncmp(stat + strcspn(stat, "("), "(nsd: server", 12) != 0 || rp[1] != ' ' || rp[2] == 'Z')
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	for (size_t k = 0; k < n; k++)
		if (cmd[k] == '\0')
			cmd[k] = ' ';
	cmd[n] = '\0';
	return strstr(cmd, d->dir) != NULL;
}

/* The NSD server processes answering for d now. */
static int our_nsd_pids(const struct th_dns *d, pid_t *pids, int max)
{
	DIR *dir = opendir("/proc");
	if (!dir)
		return 0;
	int n = 0;
	for (struct dirent *e; n < max && (e = readdir(dir)) != NULL;) {
		pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
		if (pid > 0 && is_our_nsd(d, pid))
			pids[n++] = pid;
	}
	closedir(dir);
	return n;
}

/* A reload starts new server children; the old ones answer queries on
 * the shared socket until they have quit, so a query
 * after the new serial was seen can still get the old zone.  Waits,
 * bounded (~10 s), until the processes from before the reload are gone. */
static void wait_old_gone(const struct th_dns *d, const pid_t *old, int n)
{
	for (int tries = 0; tries < 200; tries++) {
		int alive = 0;
		for (int k = 0; k < n; k++)
			alive += is_our_nsd(d, old[k]);
		if (!alive)
			return;
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int th_dns_set_zone(struct th_dns *d, const char *origin, const char *records)
{
	for (int i = 0; i < d->n; i++) {
		if (strcmp(d->origin[i], origin) != 0)
			continue;
		d->serial[i]++;
		pid_t main_pid = nsd_main_pid(d);
		if (write_zone(d, i, records) < 0 || (d->pid <= 0 && main_pid == 0))
			return -1;
		pid_t old[OLD_NSD_MAX];
		int nold = our_nsd_pids(d, old, OLD_NSD_MAX);
		kill(main_pid ? main_pid : d->pid, SIGHUP);
		if (wait_serial(d, i) < 0)
			return -1;
		wait_old_gone(d, old, nold);
		return 0;
	}
	return -1;
}

int th_dns_port(const struct th_dns *d)
{
	return d->port;
}

const char *th_dns_servers(const struct th_dns *d)
{
	return d->servers;
}

void th_dns_stop(struct th_dns *d)
{
	if (!d)
		return;
	pid_t main_pid = d->dir ? nsd_main_pid(d) : 0;
	if (main_pid > 0)
		kill(main_pid, SIGTERM);
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
	}
	/* The main process a reload made is not our child: wait, bounded, until
	 * it has gone, so the next test may take the port. */
	for (int tries = 0; main_pid > 0 && tries < 200 && kill(main_pid, 0) == 0; tries++) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	th_rmrf(d->dir);
	free(d->dir);
	for (int i = 0; i < d->n; i++)
		free(d->origin[i]);
	free(d);
}
