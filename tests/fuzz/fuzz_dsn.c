/*
 * fuzz_dsn.c - libFuzzer harness for the bounce parser (bounce/dsn.c) and
 * the MIME reader under it (mail/mime_parse.c).  Any input must parse
 * without a crash, a leak or undefined behaviour, and the result must
 * respect its bounds.  Seeded with tests/data/ by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bounce/dsn.h"
#include "mail/mime_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dsn_report r;
	char err[128];
	if (dsn_parse((const char *)data, size, &r, err, sizeof(err)) == 0) {
		if (r.nrcpts < 0 || r.nrcpts > MF_DSN_RCPTS_MAX)
			abort();
		for (int i = 0; i < r.nrcpts; i++)
			if (strlen(r.rcpts[i].final_rcpt) > MF_ADDRESS_MAX || strlen(r.rcpts[i].status) >= 16)
				abort();
		dsn_report_cleanup(&r);
	}
	struct mime_part *p = NULL;
	if (mime_parse((const char *)data, size, &p, err, sizeof(err)) == 0) {
		char v[64];
		mime_param_get(mime_header_get(p, "Content-Type"), "boundary", v, sizeof(v));
		mime_part_free(p);
	}
	return 0;
}
