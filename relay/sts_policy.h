/*
 * sts_policy.h - MTA-STS (RFC 8461) texts, parsed with bounds and no I/O:
 * the "_mta-sts" TXT record (§3.1), the policy file (§3.2), and the match
 * of an MX host against the policy's mx patterns (§4.1).
 *
 * Everything here is pure: fetching, caching and applying a policy is the
 * relay's.
 */
#ifndef MF_RELAY_STS_POLICY_H
#define MF_RELAY_STS_POLICY_H

#include <stddef.h>

enum sts_mode { STS_MODE_NONE, STS_MODE_TESTING, STS_MODE_ENFORCE };

#define STS_POLICY_SIZE_MAX 65536L   /* §3.3: senders may limit the policy body; 64 KiB */
#define STS_MX_MAX 16                /* mx patterns kept (more: the policy is refused) */
#define STS_ID_MAX 32                /* §3.1: id = 1*32(ALPHA / DIGIT) */
#define STS_MAX_AGE_MAX 31557600L    /* §3.2: max_age up to one year */

struct sts_policy {
	enum sts_mode mode;
	long max_age;                    /* seconds */
	int nmx;
	char mx[STS_MX_MAX][256];        /* lower case, "*.example.net" keeps its "*." */
};

/* "none", "testing", "enforce". */
const char *sts_mode_name(enum sts_mode m);

/*
 * §3.1: one TXT record's text.  Returns 0 with the id copied into
 * id[STS_ID_MAX + 1] when it is "v=STSv1; id=...;" (other fields
 * ignored), 1 when it does not start with "v=STSv1" (not an STS record:
 * the caller discards it), -1 when it starts so but is invalid.
 */
int sts_txt_parse(const char *txt, char *id);

/*
 * §3.2: the policy body (len bytes, not NUL-terminated, at most
 * STS_POLICY_SIZE_MAX).  Lines "key: value" end in CRLF or LF; unknown
 * keys are ignored; version must be STSv1, mode and max_age present, at
 * least one mx unless mode is none.  Returns 0, or -1 with why.
 */
int sts_policy_parse(const char *text, size_t len, struct sts_policy *p, char *why, size_t whylen);

/* §4.1: 1 when host (an MX name, any case, trailing dot allowed) matches
 * one of the policy's mx patterns ("*." matches exactly one label). */
int sts_mx_match(const struct sts_policy *p, const char *host);

#endif
