/*
 * mailreq.c - init/cleanup of struct mail_request (see mailreq.h).
 */
#include "mail/mailreq.h"

#include <stdlib.h>
#include <string.h>

void mail_request_init(struct mail_request *r)
{
	memset(r, 0, sizeof(*r));
}

static void addr_cleanup(struct mail_address *a)
{
	free(a->name);
	free(a->addr);
}

static void headers_free(struct mail_header *h, int n)
{
	for (int i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

void mail_request_cleanup(struct mail_request *r)
{
	if (r == NULL)
		return;
	addr_cleanup(&r->from);
	for (int i = 0; i < r->nrcpts; i++)
		addr_cleanup(&r->rcpts[i].a);
	free(r->rcpts);
	for (int i = 0; i < r->nreply_to; i++)
		addr_cleanup(&r->reply_to[i]);
	free(r->reply_to);
	free(r->subject);
	free(r->text);
	free(r->html);
	headers_free(r->headers, r->nheaders);
	headers_free(r->metadata, r->nmetadata);
	for (int i = 0; i < r->natts; i++) {
		free(r->atts[i].filename);
		free(r->atts[i].content_type);
		free(r->atts[i].content_id);
		free(r->atts[i].data);
	}
	free(r->atts);
	for (int i = 0; i < r->ntags; i++)
		free(r->tags[i]);
	free(r->tags);
	memset(r, 0, sizeof(*r));
}
