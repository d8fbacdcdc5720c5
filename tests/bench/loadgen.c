/*
 * loadgen.c - a small HTTP load generator for the benchmarks (libcurl multi,
 * one thread, keep-alive connections), cheaper than a script loop so that it
 * steals little CPU from the server on a 2-core machine.
 *
 *   loadgen URL BODYFILE KEY CONCURRENCY REQUESTS [RATE]
 *
 * Closed loop (RATE 0): CONCURRENCY requests in flight until REQUESTS are
 * done.  Open loop (RATE > 0): requests start at RATE per second (at most
 * CONCURRENCY in flight), latency measured from the scheduled start.
 * Prints: requests, ok (2xx), errors, seconds, rps, p50_ms, p99_ms, cpu_s.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct slot {
	CURL *h;
	double start;
	int busy;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t s, size_t n, void *a)
{
	(void)p, (void)a;
	return s * n;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static char *read_file(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)*len + 1);
	if (fread(b, 1, (size_t)*len, f) != (size_t)*len) {
		fclose(f);
		free(b);
		return NULL;
	}
	b[*len] = 0;
	fclose(f);
	return b;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: loadgen URL BODYFILE KEY CONCURRENCY REQUESTS [RATE]\n");
		return 2;
	}
	const char *url = argv[1];
	long blen;
	char *body = read_file(argv[2], &blen);
	if (!body) {
		fprintf(stderr, "loadgen: cannot read %s\n", argv[2]);
		return 2;
	}
	int conc = atoi(argv[4]), total = atoi(argv[5]);
	double rate = argc > 6 ? atof(argv[6]) : 0;
	char auth[512];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", argv[3]);
	struct curl_slist *hdrs = curl_slist_append(NULL, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");

	curl_global_init(CURL_GLOBAL_ALL);
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)conc);
	struct slot *slots = calloc((size_t)conc, sizeof(*slots));
	double *lat = calloc((size_t)total, sizeof(double));
	int started = 0, done = 0, ok = 0, errors = 0, running = 0;
	double t0 = now_s();
	for (int i = 0; i < conc; i++) {
		slots[i].h = curl_easy_init();
		curl_easy_setopt(slots[i].h, CURLOPT_URL, url);
		curl_easy_setopt(slots[i].h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(slots[i].h, CURLOPT_POSTFIELDSIZE, blen);
		curl_easy_setopt(slots[i].h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(slots[i].h, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(slots[i].h, CURLOPT_PRIVATE, &slots[i]);
		curl_easy_setopt(slots[i].h, CURLOPT_TIMEOUT, 30L);
	}
	while (done < total) {
		double t = now_s();
		for (int i = 0; i < conc && started < total; i++) {
			if (slots[i].busy)
				continue;
			double sched = rate > 0 ? t0 + started / rate : t;
			if (sched > t)
				break;
			slots[i].busy = 1;
			slots[i].start = sched;
			curl_multi_add_handle(m, slots[i].h);
			started++;
		}
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int q;
		while ((msg = curl_multi_info_read(m, &q))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *s;
			long code = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			if (msg->data.result == CURLE_OK && code >= 200 && code < 300)
				ok++;
			else
				errors++;
			lat[done++] = now_s() - s->start;
			curl_multi_remove_handle(m, msg->easy_handle);
			s->busy = 0;
		}
		curl_multi_poll(m, NULL, 0, rate > 0 ? 1 : 100, NULL);
	}
	double secs = now_s() - t0;
	qsort(lat, (size_t)done, sizeof(double), cmp);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	printf("requests=%d ok=%d errors=%d seconds=%.3f rps=%.1f p50_ms=%.2f p99_ms=%.2f loadgen_cpu_s=%.2f\n",
	       done, ok, errors, secs, done / secs, lat[done / 2] * 1000, lat[(int)(done * 0.99)] * 1000, cpu);
	return errors ? 1 : 0;
}
