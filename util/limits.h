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
/* Config file line length. */
#define MF_CONFIG_LINE_MAX 4096
/* Webhook response bodies are read up to this many bytes. */
#define MF_WEBHOOK_RESPONSE_MAX 4096

/* Replay: recipients requeued per transaction, and dry-run sample size. */
#define MF_REPLAY_BATCH 1000
#define MF_REPLAY_SAMPLE_MAX 100
/* Retention: rows deleted or cleared per transaction, and the pause
 * between housekeeping rounds in seconds. */
#define MF_RETENTION_BATCH 500
#define MF_RETENTION_INTERVAL 60
/* Idempotency keys are kept this many seconds (INTERFACE.md: 24 h). */
#define MF_IDEMPOTENCY_TTL (24 * 3600)
/* CLI: HTTP response bodies read by "mailferry send". */
#define MF_CLI_RESPONSE_MAX (1024 * 1024)
#endif
