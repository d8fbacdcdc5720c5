/*
 * validate.h - the send request (INTERFACE.md "Send request") from JSON to
 * a struct mail_request, with every problem named by its field.
 *
 * Fields are named as a caller would write them: "to[2]",
 * "attachments[0].content", "headers.X-Foo", "metadata.order".  Codes are
 * stable strings (required, invalid_type, invalid_address, too_many,
 * too_long, header_injection, invalid_character, forbidden_header,
 * invalid_header_name, invalid_base64, invalid_datetime, unknown_field,
 * invalid_value).
 *
 * validate_send() never stops at the first problem: it collects them all
 * (up to MF_VALIDATION_ERRORS_MAX).  It returns 0 with out filled, or -1
 * with errs non-empty and out cleaned up.
 */
#ifndef MF_API_VALIDATE_H
#define MF_API_VALIDATE_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "mail/mailreq.h"
#include "util/limits.h"

struct val_error {
	char field[MF_VALIDATION_FIELD_MAX];
	char code[MF_VALIDATION_CODE_MAX];
	char message[MF_VALIDATION_MESSAGE_MAX];
};

struct val_errors {
	struct val_error *v;
	int n;
	int cap;
	int dropped;   /* problems beyond MF_VALIDATION_ERRORS_MAX */
};

void val_errors_init(struct val_errors *e);
void val_errors_cleanup(struct val_errors *e);
void val_add(struct val_errors *e, const char *field, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Why a body is not acceptable JSON (400 invalid_json). */
struct json_problem {
	char detail[256];
	int line, column;
	long position;
	int not_utf8;  /* the body is not UTF-8 (position is the byte offset) */
};

/*
 * Parses a request body: it must be UTF-8 and one JSON value, without
 * duplicate keys.  Returns the value (caller json_decref()s) or NULL with
 * p filled.
 */
json_t *validate_parse_json(const char *body, size_t len, struct json_problem *p);

/* 1 when the Content-Type header names JSON (application/json, optional
 * charset=utf-8), else 0. */
int validate_is_json_content_type(const char *ct);

/* Validates one send request object into out (see the top of this file). */
int validate_send(const json_t *root, struct mail_request *out, struct val_errors *errs);

/* Parses an RFC 3339 date-time (RFC 3339 §5.6) into seconds since the epoch;
 * 0 or -1. */
int validate_rfc3339(const char *s, time_t *out);

/* Decodes standard base64 (RFC 4648 §4), whitespace ignored; returns the
 * decoded bytes (caller frees) and their length, or NULL when malformed. */
unsigned char *validate_base64_decode(const char *s, size_t n, size_t *outlen);

#endif
