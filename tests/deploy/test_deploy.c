/*
 * Tests for the deployment files in deploy/: apt.sh waits for a held apt
 * lock; the systemd unit passes
 * "systemd-analyze verify" without a single warning and scores as well
 * hardened; docker-compose.yml and the Kubernetes manifests load as YAML
 * (python3-yaml, via popen) and have the services, roles, probes and the
 * migration Job they promise.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static const char *srcdir(void)
{
	const char *s = getenv("MAILFERRY_TEST_SRCDIR");
	return s && *s ? s : ".";
}

Test(deploy, systemd_unit_verifies_and_is_hardened)
{
	/* No skip when it is missing: deploy/bootstrap.sh test installs systemd. */
	cr_assert_eq(th_run(NULL, "command -v systemd-analyze"), 0,
		     "systemd-analyze missing: deploy/bootstrap.sh test installs systemd");
	char *dir = th_tmpdir("unit");
	char *out = NULL;
	/* verify checks that ExecStart exists: point it at the binary under test. */
	char *bin = realpath(th_bin(), NULL);
	cr_assert_not_null(bin);
	cr_assert_eq(th_run(&out, "sed 's|/usr/local/bin/mailferry|%s|g' %s/deploy/mailferry.service > %s/mailferry.service",
			    bin, srcdir(), dir), 0, "%s", out);
	free(bin);
	free(out);
	int rc = th_run(&out, "systemd-analyze verify %s/mailferry.service", dir);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_str_eq(out, "", "verify warned: %s", out);
	free(out);
	rc = th_run(&out, "systemd-analyze security --offline=yes %s/mailferry.service | tail -1", dir);
	cr_assert_eq(rc, 0, "%s", out);
	double score = 10;
	const char *p = strstr(out, "mailferry.service: ");
	cr_assert_not_null(p, "%s", out);
	sscanf(p + 19, "%lf", &score);
	cr_assert_lt(score, 2.0, "exposure %s", out);
	free(out);
	/* The unit has what the operations guide promises. */
	rc = th_run(&out, "cat %s/deploy/mailferry.service", srcdir());
	static const char *need[] = { "DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
				      "PrivateTmp=yes", "ProtectHome=yes", "CapabilityBoundingSet=\n",
				      "RestrictAddressFamilies=", "SystemCallFilter=@system-service",
				      "ExecStartPre=/usr/local/bin/mailferry migrate", "ExecReload=/bin/kill -HUP" };
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		cr_assert(strstr(out, need[i]), "unit lacks %s", need[i]);
	free(out);
	/* And the check is real: a broken unit fails it. */
	cr_assert_eq(th_run(&out, "printf '[Service]\\nExecStart=/bin/true\\nProtectSystem=bogus\\n' > %s/bad.service &&"
				  " systemd-analyze verify %s/bad.service", dir, dir), 0);
	cr_assert(strstr(out, "bogus"), "%s", out);
	free(out);
	th_rmrf(dir);
	free(dir);
}

/* Runs a python3 snippet over the YAML files; returns its stdout. */
static char *yaml_facts(void)
{
	static const char script[] =
		"import glob, sys, yaml\n"
		"src = sys.argv[1]\n"
		"c = yaml.safe_load(open(src + '/deploy/docker-compose.yml'))\n"
		"for n, s in sorted(c['services'].items()):\n"
		"    cmd = ' '.join(s.get('command', []))\n"
		"    dep = ','.join(sorted(s.get('depends_on', {})))\n"
		"    print('compose', n, s.get('image') or '-', cmd or '-', dep or '-')\n"
		"    for d, v in sorted(s.get('depends_on', {}).items()):\n"
		"        print('compose-dep', n, d, v['condition'])\n"
		"for f in sorted(glob.glob(src + '/deploy/k8s/*.yaml')):\n"
		"    for d in yaml.safe_load_all(open(f)):\n"
		"        if not d: continue\n"
		"        k, name = d['kind'], d.get('metadata', {}).get('name', '-')\n"
		"        print('k8s', k, name)\n"
		"        spec = d.get('spec', {})\n"
		"        pod = spec.get('template', {}).get('spec', {})\n"
		"        for ct in pod.get('containers', []):\n"
		"            print('container', name, ' '.join(ct.get('args', [])))\n"
		"            for p in ('readinessProbe', 'livenessProbe'):\n"
		"                if p in ct: print('probe', name, p, ct[p]['httpGet']['path'])\n"
		"            sc = ct.get('securityContext', {})\n"
		"            print('secctx', name, sc.get('readOnlyRootFilesystem'), sc.get('allowPrivilegeEscalation'),\n"
		"                  ','.join(sc.get('capabilities', {}).get('drop', [])))\n"
		"            for e in ct.get('envFrom', []):\n"
		"                print('envfrom', name, list(e)[0], list(e.values())[0]['name'])\n"
		"        if k == 'Job': print('jobrestart', name, pod.get('restartPolicy'))\n"
		"        if k == 'Deployment': print('grace', name, pod.get('terminationGracePeriodSeconds'))\n";
	char *dir = th_tmpdir("yaml");
	char path[512], cmd[1200];
	snprintf(path, sizeof(path), "%s/facts.py", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(script, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "python3 %s %s 2>&1", path, srcdir());
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t cap = 1 << 16, n = 0;
	char *out = calloc(1, cap);
	size_t r;
	while ((r = fread(out + n, 1, cap - 1 - n, p)) > 0)
		n += r;
	int rc = pclose(p);
	cr_assert_eq(rc, 0, "python3: %s", out);
	th_rmrf(dir);
	free(dir);
	return out;
}

Test(deploy, compose_and_k8s_manifests)
{
	char *facts = yaml_facts();
	static const char *need[] = {
		/* compose: PostgreSQL, a migration job before serve, a capture sink. */
		"compose postgres postgres:15 - -\n",
		"compose migrate mailferry:latest migrate postgres\n",
		"compose-dep migrate postgres service_healthy\n",
		"compose mailferry mailferry:latest serve migrate,sink\n",
		"compose-dep mailferry migrate service_completed_successfully\n",
		"compose sink mailferry:latest sink --listen 0.0.0.0:2525",
		/* k8s: config, the migration Job, API and workers apart with roles. */
		"k8s ConfigMap mailferry-config\n",
		"k8s Secret mailferry-secrets\n",
		"k8s Job mailferry-migrate\n",
		"container mailferry-migrate migrate\n",
		"jobrestart mailferry-migrate OnFailure\n",
		"k8s Deployment mailferry-api\n",
		"container mailferry-api serve --roles api\n",
		"probe mailferry-api readinessProbe /readyz\n",
		"probe mailferry-api livenessProbe /healthz\n",
		"k8s Service mailferry-api\n",
		"k8s Deployment mailferry-workers\n",
		"container mailferry-workers serve --roles delivery,webhooks,bounces\n",
		"probe mailferry-workers readinessProbe /readyz\n",
		"probe mailferry-workers livenessProbe /healthz\n",
		"secctx mailferry-api True False ALL\n",
		"secctx mailferry-workers True False ALL\n",
		"envfrom mailferry-api configMapRef mailferry-config\n",
		"envfrom mailferry-api secretRef mailferry-secrets\n",
		"envfrom mailferry-migrate secretRef mailferry-secrets\n",
		"grace mailferry-api 40\n",
		"grace mailferry-workers 40\n",
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		cr_assert(strstr(facts, need[i]), "missing \"%s\" in:\n%s", need[i], facts);
	free(facts);
}

Test(deploy, dockerfile_is_multi_stage_on_debian12_slim)
{
	char *out = NULL;
	cr_assert_eq(th_run(&out, "grep -E '^(FROM|USER|ENTRYPOINT|STOPSIGNAL)' %s/deploy/Dockerfile", srcdir()), 0);
	cr_assert(strstr(out, "FROM debian:12 AS build\n"), "%s", out);
	cr_assert(strstr(out, "FROM debian:12-slim\n"), "%s", out);
	cr_assert(strstr(out, "USER 10025:10025\n"), "runs unprivileged: %s", out);
	cr_assert(strstr(out, "STOPSIGNAL SIGTERM\n"), "%s", out);
	free(out);
}

/*
 * The unit's service user can read its configuration.  systemd is not
 * PID 1 here, so this does by hand, as root, what systemd and the install
 * steps of docs/operations.md do, then runs mailferry with the uid and gid
 * of a DynamicUser= service (setpriv, no supplementary groups):
 *  - /etc/mailferry stays root-owned 0750 and mailferry.conf root 0600,
 *    which such a user cannot read (the unit used to point --config there);
 *  - LoadCredential=mailferry.conf:/etc/mailferry/mailferry.conf makes
 *    systemd copy it into $CREDENTIALS_DIRECTORY (a directory owned by the
 *    service user, the file 0400), which mailferry reads without --config.
 * What only a running systemd shows (the copy itself, the dynamic uid it
 * picks) is not tested here.
 */
Test(deploy, systemd_service_user_reads_its_configuration)
{
	char *out = NULL;
	/* The unit: a dynamic user, the configuration as a credential, and
	 * commands that leave the file to mailferry's default lookup. */
	cr_assert_eq(th_run(&out, "grep -E '^(DynamicUser|LoadCredential|ExecStart|ExecStartPre|ConfigurationDirectory)='"
				  " %s/deploy/mailferry.service", srcdir()), 0, "%s", out);
	cr_assert(strstr(out, "DynamicUser=yes\n"), "%s", out);
	cr_assert(strstr(out, "LoadCredential=mailferry.conf:/etc/mailferry/mailferry.conf\n"), "%s", out);
	cr_assert(strstr(out, "ExecStartPre=/usr/local/bin/mailferry migrate\n"), "%s", out);
	cr_assert(strstr(out, "ExecStart=/usr/local/bin/mailferry serve\n"), "%s", out);
	cr_assert_null(strstr(out, "--config"), "a --config path bypasses the credential: %s", out);
	free(out);

	char *dir = th_tmpdir("unitcfg");
	const int uid = 61234; /* in systemd's DynamicUser= range 61184..65519 */
	cr_assert_eq(th_run(&out,
			    "set -e; cd %s; mkdir -p etc/mailferry creds;"
			    " printf 'http_listen = 127.0.0.1:9876\\nworkers = 7\\n' > etc/mailferry/mailferry.conf;"
			    " chown -R root:root etc/mailferry; chmod 0750 etc/mailferry; chmod 0600 etc/mailferry/mailferry.conf;"
			    " cp etc/mailferry/mailferry.conf creds/mailferry.conf;"
			    " chown -R %d:%d creds; chmod 0400 creds/mailferry.conf; chmod 0500 creds",
			    dir, uid, uid), 0, "%s", out);
	free(out);
	/* As the old unit had it: the service user cannot read the file. */
	int rc = th_run(&out, "env -i PATH=/usr/bin:/bin setpriv --reuid=%d --regid=%d --clear-groups %s config check"
			      " --config %s/etc/mailferry/mailferry.conf", uid, uid, th_bin(), dir);
	cr_assert_eq(rc, 2, "%s", out);
	cr_assert(strstr(out, "ermission denied"), "%s", out);
	free(out);
	/* As the unit has it: the credential, found without --config. */
	rc = th_run(&out, "cd / && env -i PATH=/usr/bin:/bin CREDENTIALS_DIRECTORY=%s/creds setpriv --reuid=%d --regid=%d"
			  " --clear-groups %s config check", dir, uid, uid, th_bin());
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "http_listen = 127.0.0.1:9876\n") && strstr(out, "workers = 7\n"), "%s", out);
	free(out);
	/* --config still wins over the credential. */
	rc = th_run(&out, "cd / && CREDENTIALS_DIRECTORY=%s/creds %s config check --config /dev/null", dir, th_bin());
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "workers = 1000\n"), "%s", out);
	free(out);
	th_rmrf(dir);
	free(dir);
}

/*
 * deploy/apt.sh: bootstrap's apt-get waits for another apt (on a cloud
 * VM's first boot, unattended-upgrades) instead of failing.  A python3
 * process holds the lock with fcntl(2), as apt does, for two seconds; a
 * plain apt-get fails at once (so the lock is really held), apt_wait_get
 * returns 0 only after the holder has let go.  "install" of an installed
 * package exercises DPkg::Lock::Timeout (the dpkg frontend lock); "clean"
 * takes the archives lock, which apt-get does not wait for by itself, and
 * so exercises apt_wait_get's own retry.  Neither needs the network.
 */
static void apt_waits_for(const char *lock, const char *args)
{
	char *dir = th_tmpdir("aptlock");
	char path[512];
	snprintf(path, sizeof(path), "%s/t.sh", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"set -u; cd \"$1\"; t=\"$2\"\n"
		"python3 -c 'import fcntl, sys, time\n"
		"f = open(sys.argv[1], \"w\"); fcntl.lockf(f, fcntl.LOCK_EX)\n"
		"open(sys.argv[2] + \"/held\", \"w\").close(); time.sleep(2)\n"
		"open(sys.argv[2] + \"/released\", \"w\").close()' \"$3\" \"$t\" &\n"
		"for i in $(seq 200); do [ -f \"$t/held\" ] && break; sleep 0.05; done\n"
		"[ -f \"$t/held\" ] || { echo 'holder never held the lock'; exit 3; }\n"
		". deploy/apt.sh\n"
		"if APT_LOCK_TIMEOUT=0 apt_wait_get %s >/dev/null 2>&1; then echo 'CONTROL: not refused'; exit 4; fi\n"
		"APT_LOCK_TIMEOUT=60 apt_wait_get %s || { echo 'apt_wait_get failed'; exit 5; }\n"
		"[ -f \"$t/released\" ] || { echo 'returned while the lock was held'; exit 6; }\n"
		"wait; echo WAITED_OK\n",
		args, args);
	fclose(f);
	char *out = NULL;
	int rc = th_run(&out, "bash %s %s %s %s", path, srcdir(), dir, lock);
	cr_assert_eq(rc, 0, "%s: rc %d: %s", lock, rc, out);
	cr_assert(strstr(out, "WAITED_OK"), "%s", out);
	free(out);
	th_rmrf(dir);
	free(dir);
}

Test(deploy, apt_waits_for_a_held_dpkg_lock)
{
	apt_waits_for("/var/lib/dpkg/lock-frontend", "install -y -qq hostname");
	apt_waits_for("/var/cache/apt/archives/lock", "clean");
}
