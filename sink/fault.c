/*
 * fault.c - parsing and rolling the sink's fault plan (see fault.h).
 * Pure: no I/O, no randomness of its own (the caller passes the roll), so
 * it is tested directly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/fault.h"
#include "util/xmalloc.h"

#define SINK_FAULT_ITEMS_MAX 64

struct sink_fault_item {
	enum sink_stage stage;
	struct sink_fault what;
	double percent;
};

struct sink_faults {
	struct sink_fault_item items[SINK_FAULT_ITEMS_MAX];
	size_t n;
	double total[SINK_STAGE_COUNT];
};

static const char *const stage_names[SINK_STAGE_COUNT] = {
	[SINK_STAGE_CONNECT] = "connect", [SINK_STAGE_EHLO] = "ehlo", [SINK_STAGE_MAIL] = "mail",
	[SINK_STAGE_RCPT] = "rcpt",       [SINK_STAGE_DATA] = "data", [SINK_STAGE_TARPIT] = "tarpit",
};

const char *sink_stage_name(enum sink_stage s)
{
	return (unsigned)s < SINK_STAGE_COUNT ? stage_names[s] : "?";
}

int sink_duration_parse(const char *s, long *ms)
{
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end = NULL;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		return -1;
	double mult;
	if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		mult = 1000;
	else if (strcmp(end, "m") == 0)
		mult = 60000;
	else if (strcmp(end, "h") == 0)
		mult = 3600000;
	else
		return -1;
	double r = v * mult;
	if (r > 24.0 * 3600000)
		return -1;
	*ms = (long)(r + 0.5);
	return 0;
}

static int parse_percent(const char *s, double *out)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end = NULL;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || (*end != '\0' && strcmp(end, "%") != 0) || v < 0 || v > 100)
		return -1;
	*out = v;
	return 0;
}

static int parse_stage(const char *s, enum sink_stage *out)
{
	for (int i = 0; i < SINK_STAGE_COUNT; i++)
		if (strcmp(s, stage_names[i]) == 0) {
			*out = (enum sink_stage)i;
			return 0;
		}
	return -1;
}

/* A reply code: three digits, 400..599 (a fault is a refusal). */
static int parse_code(const char *s, int *code)
{
	if (strlen(s) != 3 || s[0] < '4' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
		return -1;
	*code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	return 0;
}

/* One "a:b:c" item, in place (item is modifiable).  Returns 0 or -1 with err. */
static int parse_item(struct sink_faults *f, char *item, char *err, size_t errlen)
{
	char *c1 = strchr(item, ':');
	char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (c1 == NULL || c2 == NULL || strchr(c2 + 1, ':') != NULL)
		return snprintf(err, errlen, "want stage:reply:percent"), -1;
	*c1 = *c2 = '\0';
	const char *what = c1 + 1, *pct = c2 + 1;
	struct sink_fault_item it = { 0 };
	if (parse_stage(item, &it.stage) != 0)
		return snprintf(err, errlen, "unknown stage (connect, ehlo, mail, rcpt, data, tarpit)"), -1;
	if (parse_percent(pct, &it.percent) != 0)
		return snprintf(err, errlen, "bad percentage (0..100, e.g. 5%%)"), -1;
	if (it.stage == SINK_STAGE_TARPIT) {
		it.what.kind = SINK_FAULT_TARPIT;
		if (sink_duration_parse(what, &it.what.delay_ms) != 0)
			return snprintf(err, errlen, "bad tarpit duration (e.g. 30s, 500ms)"), -1;
	} else if (strcmp(what, "drop") == 0) {
		it.what.kind = SINK_FAULT_DROP;
	} else {
		it.what.kind = SINK_FAULT_REPLY;
		if (parse_code(what, &it.what.code) != 0)
			return snprintf(err, errlen, "bad reply (a code 400..599 or \"drop\")"), -1;
	}
	if (f->total[it.stage] + it.percent > 100.0 + 1e-9)
		return snprintf(err, errlen, "the %s percentages add up beyond 100", stage_names[it.stage]), -1;
	if (f->n == SINK_FAULT_ITEMS_MAX)
		return snprintf(err, errlen, "more than %d items", SINK_FAULT_ITEMS_MAX), -1;
	f->total[it.stage] += it.percent;
	f->items[f->n++] = it;
	return 0;
}

int sink_faults_parse(const char *spec, struct sink_faults **out, char *err, size_t errlen)
{
	struct sink_faults *f = xcalloc(1, sizeof(*f));
	char *copy = xstrdup(spec ? spec : "");
	int rc = 0;
	char *p = copy;
	while (rc == 0 && *p != '\0') {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		char orig[256];
		snprintf(orig, sizeof(orig), "%s", p);
		char why[160];
		if (*p == '\0' || parse_item(f, p, why, sizeof(why)) != 0) {
			if (*p == '\0')
				snprintf(why, sizeof(why), "empty item");
			snprintf(err, errlen, "bad fault \"%s\": %s", orig, why);
			rc = -1;
		}
		p = comma ? comma + 1 : p + strlen(p);
		if (rc == 0 && comma && *p == '\0') {
			snprintf(err, errlen, "bad fault \"\": empty item");
			rc = -1;
		}
	}
	free(copy);
	if (rc != 0) {
		free(f);
		return -1;
	}
	*out = f;
	return 0;
}

void sink_faults_free(struct sink_faults *f)
{
	free(f);
}

int sink_faults_has(const struct sink_faults *f, enum sink_stage stage)
{
	return f != NULL && (unsigned)stage < SINK_STAGE_COUNT && f->total[stage] > 0;
}

struct sink_fault sink_faults_roll(const struct sink_faults *f, enum sink_stage stage, double roll)
{
	struct sink_fault none = { .kind = SINK_FAULT_NONE };
	if (!sink_faults_has(f, stage))
		return none;
	double x = roll * 100.0, acc = 0;
	for (size_t i = 0; i < f->n; i++) {
		if (f->items[i].stage != stage)
			continue;
		acc += f->items[i].percent;
		if (x < acc)
			return f->items[i].what;
	}
	return none;
}
