/*
 * fuzz_submit_msg.c - libFuzzer harness for the check and preparation of
 * a message submitted over SMTP (submit/submit_msg.c): the octet rules,
 * the header scan, X-Mailferry-Tag/-Metadata.  The first input byte picks
 * BODY=8BITMIME and SMTPUTF8.  Whatever is accepted must have a From, a
 * Message-ID, metadata that is a JSON object, no X-Mailferry- field left,
 * and a prepared message within the size limit.  The To:/Cc:/From:
 * address-list reader (submit_msg_next_addr) must end, and write only
 * local@domain with a lower-case domain.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "submit/submit_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 65536)
		return 0;
	char *msg = malloc(size - 1 ? size - 1 : 1);
	if (msg == NULL)
		return 0;
	memcpy(msg, data + 1, size - 1);
	struct submit_msg_params p = { .body_8bitmime = data[0] & 1, .smtputf8 = (data[0] >> 1) & 1,
				       .msgid_domain = "fuzz.test", .msgid_local = "id", .date = 0,
				       .max_size = 70000 };
	struct submit_msg m;
	if (submit_msg_prepare(msg, size - 1, &p, &m) == SUBMIT_MSG_OK) {
		if (m.from == NULL || m.message_id == NULL || m.subject == NULL || m.body.len > p.max_size ||
		    m.metadata.len < 2 || m.metadata.data[0] != '{' || m.metadata.data[m.metadata.len - 1] != '}')
			abort();
		/* No X-Mailferry- field may start a line of the header section. */
		const char *b = m.body.data, *end = b + m.body.len;
		for (const char *l = b; l < end;) {
			if ((size_t)(end - l) >= 2 && l[0] == '\r' && l[1] == '\n')
				break;
			const char *c = memchr(l, ':', (size_t)(end - l));
			const char *e = memchr(l, '\r', (size_t)(end - l));
			if (c && (!e || c < e)) {
				size_t n = (size_t)(c - l);
				while (n > 0 && (l[n - 1] == ' ' || l[n - 1] == '\t'))
					n--;
				if ((n == 15 && strncasecmp(l, "X-Mailferry-Tag", 15) == 0) ||
				    (n == 20 && strncasecmp(l, "X-Mailferry-Metadata", 20) == 0))
					abort();
			}
			const char *nl = memchr(l, '\n', (size_t)(end - l));
			if (nl == NULL)
				break;
			l = nl + 1;
		}
	}
	if (m.from != NULL) {
		const char *lists[] = { m.from, m.to, m.cc };
		for (size_t i = 0; i < 3; i++) {
			const char *cur = lists[i];
			char addr[MF_ADDRESS_MAX + 1];
			size_t n = 0;
			while (submit_msg_next_addr(&cur, addr, sizeof(addr))) {
				const char *at = strrchr(addr, '@');
				if (at == NULL || at == addr || at[1] == '\0' || ++n > size)
					abort();
				for (const char *q = at + 1; *q; q++)
					if (*q >= 'A' && *q <= 'Z')
						abort();
			}
		}
		(void)submit_msg_kind(&m, "a@b.test");
	}
	submit_msg_cleanup(&m);
	free(msg);
	return 0;
}
