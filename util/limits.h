/*
 * limits.h - every size limit of mailferry in one place (STYLE.md).
 */
#ifndef MF_LIMITS_H
#define MF_LIMITS_H

/* RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF. */
#define MF_SMTP_LINE_MAX 1000
/* RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; we accept a
 * multiline reply up to this many octets in all. */
#define MF_SMTP_REPLY_MAX 65536
/* RFC 5322 §2.1.1: a line must not exceed 998 characters excluding CRLF. */
#define MF_MIME_LINE_MAX 998
/* RFC 5321 §4.5.3.1.1/2: local part 64 octets, domain 255 octets. */
#define MF_LOCAL_PART_MAX 64
#define MF_DOMAIN_MAX 255
#define MF_ADDRESS_MAX 320
/* Recipients per message (to + cc + bcc), INTERFACE.md. */
#define MF_RECIPIENTS_MAX 50
#define MF_TAGS_MAX 10
#define MF_TAG_LEN_MAX 128
#define MF_METADATA_MAX 4096
#define MF_BATCH_MAX 500
#define MF_IDEMPOTENCY_KEY_MAX 256
/* Default composed message size limit (max_message_size). */
#define MF_MESSAGE_SIZE_DEFAULT (10u * 1024u * 1024u)
/* Request bodies: base64 inflates by 4/3, JSON adds a little; the single
 * message limit is derived from max_message_size at run time, the batch
 * endpoint gets this hard cap. */
#define MF_API_BATCH_BODY_MAX (64u * 1024u * 1024u)
/* Send request fields (api/validate.c). RFC 5322 §2.1.1: 998 octets per
 * line; longer header values are folded by the composer, so this bounds the
 * unfolded value. */
#define MF_HEADER_VALUE_MAX 998
#define MF_HEADER_NAME_MAX 76
#define MF_CUSTOM_HEADERS_MAX 50
#define MF_SUBJECT_MAX 998
#define MF_ATTACHMENTS_MAX 100
#define MF_FILENAME_MAX 255
#define MF_REPLY_TO_MAX 10
/* Problems listed in one validation answer; more are summarised. */
#define MF_VALIDATION_ERRORS_MAX 100
/* GET /v1/messages page size. */
#define MF_LIST_LIMIT_MAX 100
#define MF_LIST_LIMIT_DEFAULT 20
/* Group commit: writes taken into one transaction, and how long the
 * committer waits for more once one has arrived (microseconds). */
#define MF_COMMIT_BATCH_MAX 512
#define MF_COMMIT_LINGER_US 1000
/* API key rows are cached this long (a revocation takes effect within it). */
#define MF_AUTH_CACHE_TTL_MS 1000
/* Config file line length. */
#define MF_CONFIG_LINE_MAX 4096
/* Webhook response bodies are read up to this many bytes. */
#define MF_WEBHOOK_RESPONSE_MAX 4096

#endif
