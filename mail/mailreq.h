/*
 * mailreq.h - a validated send request: what the API hands to the MIME
 * composer (mail/mime.h) and what the queue stores.
 *
 * This is a plain value struct shared by api/ (which fills it from JSON,
 * after validation: no CR/LF in any header value, addresses are RFC 5322
 * addr-specs, bodies are UTF-8) and relay/ (which composes the message).
 * Every pointer is owned by the struct; mail_request_free() releases them.
 */
#ifndef MF_MAIL_MAILREQ_H
#define MF_MAIL_MAILREQ_H

#include <stddef.h>
#include <time.h>

enum rcpt_kind { RCPT_TO, RCPT_CC, RCPT_BCC };

struct mail_address {
	char *name;  /* display name (UTF-8), NULL when absent */
	char *addr;  /* addr-spec local@domain */
};

struct mail_recipient {
	struct mail_address a;
	enum rcpt_kind kind;
};

struct mail_header {
	char *name;
	char *value;  /* UTF-8; the composer encodes non-ASCII (RFC 2047) */
};

struct mail_attachment {
	char *filename;      /* UTF-8; RFC 2231 when non-ASCII */
	char *content_type;  /* e.g. "application/pdf" */
	char *content_id;    /* NULL, or an id: the part is inline (multipart/related) */
	unsigned char *data; /* decoded bytes */
	size_t len;
};

struct mail_request {
	struct mail_address from;
	struct mail_recipient *rcpts;
	int nrcpts;
	struct mail_address *reply_to;
	int nreply_to;
	char *subject;        /* may be "" */
	char *text;           /* NULL or the text/plain body */
	char *html;           /* NULL or the text/html body */
	struct mail_header *headers;   /* custom headers, already checked */
	int nheaders;
	struct mail_attachment *atts;
	int natts;
	char **tags;
	int ntags;
	struct mail_header *metadata;  /* string -> string */
	int nmetadata;
	time_t send_at;       /* 0: now */
};

void mail_request_init(struct mail_request *r);
void mail_request_cleanup(struct mail_request *r);

#endif
