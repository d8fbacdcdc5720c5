/*
 * fuzz_address.c - libFuzzer harness for the mailbox parser
 * (mail/address.c).  The input is one mailbox as the send API receives it
 * (NUL-terminated copy); an accepted one must keep address.h's promises:
 * an addr-spec that address_check_spec() accepts again, no CR, LF or NUL,
 * a local part within MF_LOCAL_PART_MAX and a lower-cased domain that fits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/address.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_clean(const char *s)
{
	if (s != NULL && strpbrk(s, "\r\n") != NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	char err[256];
	struct mail_address a = { 0 };
	if (address_parse(s, &a, err, sizeof(err)) == 0) {
		if (a.addr == NULL || address_check_spec(a.addr, err, sizeof(err)) != 0)
			abort();
		check_clean(a.addr);
		check_clean(a.name);
		const char *at = strrchr(a.addr, '@');
		if (at == NULL || at == a.addr || (size_t)(at - a.addr) > MF_LOCAL_PART_MAX)
			abort();
		char dom[MF_ADDRESS_MAX + 1];
		address_domain_lower(a.addr, dom, sizeof(dom));
		for (const char *p = dom; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
		if (strcasecmp(dom, at + 1) != 0)
			abort();
	} else if (err[0] == '\0') {
		abort(); /* a refusal says why */
	}
	free(a.name);
	free(a.addr);
	/* The bare addr-spec check on the same bytes. */
	address_check_spec(s, err, sizeof(err));
	free(s);
	return 0;
}
