/*
 * smtp_server_cmd.h - parsing of one SMTP command line, server side
 * (RFC 5321 §4.1).  Pure: no I/O, no state, so it is unit-tested and
 * fuzzed on its own (tests/fuzz/fuzz_smtp_server_cmd.c).
 *
 * smtp_cmd_parse() fills a struct smtp_cmd and returns SMTP_CMD_OK or the
 * class of error; the session maps the class to a reply.
 */
#ifndef MF_SMTPD_SMTP_SERVER_CMD_H
#define MF_SMTPD_SMTP_SERVER_CMD_H

#include <stddef.h>

#include "util/limits.h"

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_BDAT,
};

enum smtp_cmd_result {
	SMTP_CMD_OK,
	SMTP_CMD_BAD_VERB,    /* 500 5.5.2 */
	SMTP_CMD_BAD_SYNTAX,  /* 501 5.5.4 */
	SMTP_CMD_BAD_PATH,    /* 501 5.1.7 (MAIL) / 5.1.3 (RCPT) */
	SMTP_CMD_BAD_PARAM,   /* 555 5.5.4 */
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_cmd {
	enum smtp_verb verb;
	/* HELO/EHLO: the client's domain; other verbs: the raw argument. */
	char arg[MF_SMTP_LINE_MAX];
	/* MAIL/RCPT: the mailbox without <> and source route; "" = null path. */
	char path[MF_ADDRESS_MAX + 1];
	long long size;       /* MAIL SIZE= (RFC 1870), -1 when absent */
	enum smtp_body body;  /* MAIL BODY= (RFC 6152) */
	int smtputf8;         /* MAIL SMTPUTF8 (RFC 6531 §3.4); only from smtp_cmd_parse_utf8() */
	int path_8bit;        /* the path has octets >= 0x80; only from smtp_cmd_parse_utf8() */
};

/* line excludes the CRLF.  Returns an enum smtp_cmd_result. */
enum smtp_cmd_result smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);
/* The same for a server that offers SMTPUTF8 (RFC 6531): 8-bit octets are
 * allowed in paths (path_8bit says so) and MAIL takes SMTPUTF8.  Whether a
 * path's UTF-8 is welcome in this transaction is the session's to judge. */
enum smtp_cmd_result smtp_cmd_parse_utf8(const char *line, size_t len, struct smtp_cmd *out);
/* The verb's name in upper case, for logs. */
const char *smtp_verb_name(enum smtp_verb v);

#endif
