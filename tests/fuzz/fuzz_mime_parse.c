/*
 * fuzz_mime_parse.c - libFuzzer harness for the MIME reader
 * (mail/mime_parse.c) on its own, for mail from outside (bounces, replies).
 * Any input must parse into a tree that keeps mime_parse.h's promises:
 * depth and part counts within util/limits.h, lower-case "type/subtype"
 * content types, NUL-free header values within MF_MIME_HEADER_VALUE_MAX,
 * bodies NUL-terminated at body_len.  mime_parse_headers() and
 * mime_param_get() run over the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mime_parse.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parts;

static void walk(const struct mime_part *p, int depth)
{
	if (p == NULL || depth > MF_MIME_DEPTH_MAX + 1 || ++parts > MF_MIME_PARTS_MAX + 1)
		abort();
	if (p->nhdrs < 0 || p->nhdrs > MF_MIME_HEADERS_MAX || p->nchildren < 0)
		abort();
	for (int i = 0; i < p->nhdrs; i++)
		if (p->hdrs[i].name == NULL || p->hdrs[i].value == NULL ||
		    strlen(p->hdrs[i].value) > MF_MIME_HEADER_VALUE_MAX)
			abort();
	if (p->ctype == NULL || strchr(p->ctype, '/') == NULL)
		abort();
	for (const char *c = p->ctype; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			abort();
	if (p->body != NULL && p->body[p->body_len] != '\0')
		abort();
	char v[128];
	mime_param_get(mime_header_get(p, "Content-Type"), "boundary", v, sizeof(v));
	mime_param_get(mime_header_get(p, "Content-Type"), "charset", v, sizeof(v));
	for (int i = 0; i < p->nchildren; i++)
		walk(p->children[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128];
	struct mime_part *p = NULL;
	if (mime_parse((const char *)data, size, &p, err, sizeof(err)) == 0) {
		parts = 0;
		walk(p, 0);
		mime_part_free(p);
	} else if (p != NULL || size <= MF_BOUNCE_SIZE_MAX) {
		abort(); /* it fails only on oversized input */
	}
	struct mime_part h;
	memset(&h, 0, sizeof(h));
	size_t used = mime_parse_headers((const char *)data, size, &h);
	if (used > size)
		abort();
	for (int i = 0; i < h.nhdrs; i++) {
		free(h.hdrs[i].name);
		free(h.hdrs[i].value);
	}
	free(h.hdrs);
	return 0;
}
