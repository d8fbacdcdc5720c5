/*
 * console_assets.h - the operations console's static files (api/console/),
 * compiled into the binary by api/embed_console.sh, like the migrations,
 * so that serving them needs no files and no build tool at run time.
 * api/console.c serves them.
 */
#ifndef MF_API_CONSOLE_ASSETS_H
#define MF_API_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset {
	const char *path;          /* below /console/, e.g. "app.js" */
	const char *content_type;
	const char *etag;          /* "\"<first 32 hex digits of its SHA-256>\"" */
	const unsigned char *data; /* NUL-terminated for convenience */
	size_t len;
};

extern const struct console_asset console_assets[];
extern const int console_assets_count;

#endif
