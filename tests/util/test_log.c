/* Tests for util/log.c: every line one JSON object whatever the arguments
 * hold, numbers as numbers, unique keys, recipients kept to their domain,
 * and util/ratelimit.c. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/ratelimit.h"

/* Runs the logger with stderr sent to a file; returns what it wrote. */
static int saved_fd = -1;
static FILE *capture;

static void capture_start(int json)
{
	capture = tmpfile();
	cr_assert_not_null(capture);
	saved_fd = dup(STDERR_FILENO);
	cr_assert(dup2(fileno(capture), STDERR_FILENO) >= 0);
	log_setup(MF_LOG_DEBUG, json);
	log_set_recipients(0);
}

static char *capture_end(void)
{
	dup2(saved_fd, STDERR_FILENO);
	close(saved_fd);
	long n = ftell(capture);
	cr_assert(n >= 0);
	char *s = calloc(1, (size_t)n + 1);
	rewind(capture);
	cr_assert_eq(fread(s, 1, (size_t)n, capture), (size_t)n);
	fclose(capture);
	return s;
}

/* The only line of out, parsed; fails unless it is exactly one object. */
static json_t *one_object(const char *out)
{
	const char *nl = strchr(out, '\n');
	cr_assert_not_null(nl, "no line: %s", out);
	cr_assert_eq(nl[1], '\0', "more than one line: %s", out);
	json_error_t e;
	json_t *j = json_loadb(out, (size_t)(nl - out), JSON_REJECT_DUPLICATES, &e);
	cr_assert_not_null(j, "not JSON (%s): %s", e.text, out);
	cr_assert(json_is_object(j), "%s", out);
	return j;
}

static const char *str_of(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);
	cr_assert(json_is_string(v), "%s is not a string", k);
	return json_string_value(v);
}

Test(log, hostile_strings_stay_in_their_key)
{
	const char *libpq = "FATAL:  password authentication failed for user \"ma\\il\" x=1 level=error\n"
			    "second line \x01";
	capture_start(1);
	log_warn("event=db_error op=%s error=%s note=\"while %s\" tail=%s", "connect", libpq, libpq, "ok");
	char *out = capture_end();
	json_t *j = one_object(out);
	cr_assert_str_eq(str_of(j, "event"), "db_error");
	cr_assert_str_eq(str_of(j, "op"), "connect");
	cr_assert_str_eq(str_of(j, "error"), libpq);
	char note[512];
	snprintf(note, sizeof(note), "while %s", libpq);
	cr_assert_str_eq(str_of(j, "note"), note);
	cr_assert_str_eq(str_of(j, "tail"), "ok");
	cr_assert_str_eq(str_of(j, "level"), "warn");
	cr_assert_null(json_object_get(j, "x"));
	cr_assert_eq(json_object_size(j), 7, "%s", out);
	json_decref(j);
	free(out);
}

Test(log, numbers_are_numbers_strings_are_strings)
{
	capture_start(1);
	log_info("event=n count=%d big=%" PRId64 " size=%zu ms=%.2f neg=%ld lit=42 id=%s q=\"7\" zero=%s hex=%x "
		 "lead=007 empty=%s",
		 3, (int64_t)1 << 40, (size_t)17, 1.5, -4L, "123", "0", 255, "");
	char *out = capture_end();
	json_t *j = one_object(out);
	cr_assert_eq(json_integer_value(json_object_get(j, "count")), 3);
	cr_assert_eq(json_integer_value(json_object_get(j, "big")), (json_int_t)1 << 40);
	cr_assert_eq(json_integer_value(json_object_get(j, "size")), 17);
	cr_assert(json_is_real(json_object_get(j, "ms")), "%s", out);
	cr_assert_eq(json_integer_value(json_object_get(j, "neg")), -4);
	cr_assert_eq(json_integer_value(json_object_get(j, "lit")), 42);
	cr_assert_str_eq(str_of(j, "id"), "123");
	cr_assert_str_eq(str_of(j, "q"), "7");
	cr_assert_str_eq(str_of(j, "zero"), "0");
	cr_assert_str_eq(str_of(j, "hex"), "ff");
	cr_assert_str_eq(str_of(j, "lead"), "007");
	cr_assert_str_eq(str_of(j, "empty"), "");
	json_decref(j);
	free(out);
}

Test(log, duplicate_keys_get_a_suffix)
{
	capture_start(1);
	log_info("event=a event=b level=x ts=y free words msg=m");
	char *out = capture_end();
	json_t *j = one_object(out);
	cr_assert_str_eq(str_of(j, "event"), "a");
	cr_assert_str_eq(str_of(j, "event_2"), "b");
	cr_assert_str_eq(str_of(j, "level"), "info");
	cr_assert_str_eq(str_of(j, "level_2"), "x");
	cr_assert_str_eq(str_of(j, "ts_2"), "y");
	cr_assert_str_eq(str_of(j, "msg"), "m");
	cr_assert_str_eq(str_of(j, "msg_2"), "free words");
	json_decref(j);
	free(out);
}

Test(log, invalid_utf8_becomes_replacement)
{
	capture_start(1);
	log_info("event=u text=%s", "caf\xe9 \xc3\xa9");
	char *out = capture_end();
	json_t *j = one_object(out);
	cr_assert_str_eq(str_of(j, "text"), "caf\xef\xbf\xbd \xc3\xa9");
	json_decref(j);
	free(out);
}

Test(log, text_format_quotes_what_needs_it)
{
	capture_start(0);
	log_info("event=t error=%s n=%d id=%s note=\"a %s\"", "bad \"x\"=1", 5, "42", "b\"c");
	char *out = capture_end();
	cr_assert(strstr(out, " info event=t error=\"bad \\\"x\\\"=1\" n=5 id=\"42\" note=\"a b\\\"c\"\n"), "%s", out);
	free(out);
}

Test(log, recipients_keep_to_the_domain_at_info)
{
	capture_start(1);
	log_info("event=r " LOG_RCPT_FMT " code=%d", LOG_RCPT(MF_LOG_INFO, "alice@example.net"), 250);
	log_debug("event=d " LOG_RCPT_FMT, LOG_RCPT(MF_LOG_DEBUG, "alice@example.net"));
	log_set_recipients(1);
	log_info("event=y " LOG_RCPT_FMT, LOG_RCPT(MF_LOG_INFO, "alice@example.net"));
	log_set_recipients(0);
	log_info(LOG_RCPT_FMT " event=first", LOG_RCPT(MF_LOG_INFO, "bob@example.org"));
	char *out = capture_end();
	char *l2 = strchr(out, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1;
	cr_assert(memmem(out, (size_t)(l2 - out), "alice", 5) == NULL, "%s", out);
	l2[-1] = l3[-1] = l4[-1] = '\0';
	json_t *j = json_loads(out, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(j, "%s", out);
	cr_assert_str_eq(str_of(j, "rcpt_domain"), "example.net");
	cr_assert_null(json_object_get(j, "rcpt"));
	cr_assert_eq(json_integer_value(json_object_get(j, "code")), 250);
	json_decref(j);
	j = json_loads(l2, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_str_eq(str_of(j, "rcpt"), "alice@example.net");
	json_decref(j);
	j = json_loads(l3, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_str_eq(str_of(j, "rcpt"), "alice@example.net");
	cr_assert_str_eq(str_of(j, "rcpt_domain"), "example.net");
	json_decref(j);
	j = json_loads(l4, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(j, "%s", l4);
	cr_assert_str_eq(str_of(j, "rcpt_domain"), "example.org");
	cr_assert_str_eq(str_of(j, "event"), "first");
	cr_assert_null(json_object_get(j, "rcpt"));
	cr_assert_null(json_object_get(j, "msg"));
	json_decref(j);
	free(out);
}

Test(log, limited_lines_count_what_they_dropped)
{
	capture_start(1);
	for (int i = 0; i < 5; i++)
		log_warn_limited("event=db_down attempt=%d", i);
	char *out = capture_end();
	json_t *j = one_object(out);
	cr_assert_eq(json_integer_value(json_object_get(j, "attempt")), 0);
	cr_assert_null(json_object_get(j, "suppressed"));
	json_decref(j);
	free(out);

	struct ratelimit rl = RATELIMIT_INIT(0);
	cr_assert_eq(ratelimit_pass(&rl), 0);
	cr_assert_eq(ratelimit_pass(&rl), 0);
	struct ratelimit slow = RATELIMIT_INIT(3600 * 1000L);
	cr_assert_eq(ratelimit_pass(&slow), 0);
	cr_assert_eq(ratelimit_pass(&slow), -1);
	cr_assert_eq(ratelimit_pass(&slow), -1);
	slow.last_ms -= 3600 * 1000L;
	cr_assert_eq(ratelimit_pass(&slow), 2);
}
