/*
 * limits.h - every size limit of mailferry in one place (STYLE.md).
 */
#ifndef MF_LIMITS_H
#define MF_LIMITS_H

/* MF_STR(MF_X): a limit as a string literal, for messages built from it. */
#define MF_STR_(x) #x
#define MF_STR(x) MF_STR_(x)

/* RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF. */
#define MF_SMTP_LINE_MAX 1000
/* RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; we accept a
 * multiline reply up to this many octets in all. */
#define MF_SMTP_REPLY_MAX 65536
/* One read from an outbound SMTP connection (relay/smtp_io.c); its input
 * buffer holds a whole reply (MF_SMTP_REPLY_MAX) plus one read's worth of
 * what follows it (a pipelining server's next replies). */
#define MF_SMTP_IO_READ 16384
/* RFC 5322 §2.1.1: a line must not exceed 998 characters excluding CRLF. */
#define MF_MIME_LINE_MAX 998
/* RFC 5322 §2.1.1: header lines SHOULD stay within 78 characters; we fold
 * there when the content allows it. */
#define MF_MIME_FOLD_WIDTH 78
/* RFC 2045 §6.7 (quoted-printable) and §6.8 (base64): encoded lines are at
 * most 76 characters. */
#define MF_MIME_ENCODED_LINE 76
/* RFC 2047 §2: an encoded-word is at most 75 characters. */
#define MF_MIME_EW_MAX 75
/* RFC 5321 §4.5.3.1.1/2: local part 64 octets, domain 255 octets. */
#define MF_LOCAL_PART_MAX 64
#define MF_DOMAIN_MAX 255
/* RFC 1035 §2.3.4: a label is at most 63 octets. */
#define MF_DOMAIN_LABEL_MAX 63
#define MF_ADDRESS_MAX 320
/* `workers`: concurrent SMTP sessions per delivery process.  Each holds a
 * socket and a thread (256 KiB of address space, a few pages touched) and
 * its idle session may wait in the relay's cache: 20,000 needs some
 * 45,000 descriptors, already above most systems' default hard limit. */
#define MF_WORKERS_MAX 20000
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
/* One problem (api/validate.h's struct val_error): its field path, code
 * and message in at most this many octets each, NUL included. */
#define MF_VALIDATION_FIELD_MAX 160
#define MF_VALIDATION_CODE_MAX 32
#define MF_VALIDATION_MESSAGE_MAX 256

/* JSON escaping (RFC 8259 §7; buf_put_json_string, jansson) writes one
 * input octet as at most six ("\u001f"). */
#define MF_JSON_ESCAPE_GROWTH 6
/* One problem as JSON, {"field","code","message","index"}: the three
 * strings escaped, plus 64 octets of names, punctuation and the index. */
#define MF_API_FIELD_ERROR_JSON_MAX                                                                     \
	(MF_JSON_ESCAPE_GROWTH * (MF_VALIDATION_FIELD_MAX + MF_VALIDATION_CODE_MAX + MF_VALIDATION_MESSAGE_MAX) + 64)
/* The 202 body of one accepted message (api/accepted.c):
 * {"id","status","created_at","recipients":[...]} - a UUID, a status word
 * and a timestamp, under 256 octets with the names - and per recipient
 * {"email","kind","status"}: the address escaped, plus 96 octets of names,
 * punctuation and two short words.  About 99 KiB. */
#define MF_API_ACCEPTED_MAX (256 + MF_RECIPIENTS_MAX * (MF_JSON_ESCAPE_GROWTH * MF_ADDRESS_MAX + 96))
/* The batch's 202 (api/messages.c answer_batch): {"data":[...],
 * "errors":[...]} with, for each of at most MF_BATCH_MAX messages, its 202
 * body and an "index" member (32 octets), or its problems (at most
 * MF_VALIDATION_ERRORS_MAX and one summary).  Both counted for every
 * message, which bounds the sum: about 190 MB, and in practice far less
 * (the request itself is at most MF_API_BATCH_BODY_MAX). */
#define MF_API_BATCH_ANSWER_MAX                                                                         \
	((size_t)64 + (size_t)MF_BATCH_MAX * (MF_API_ACCEPTED_MAX + 32) +                               \
	 (size_t)MF_BATCH_MAX * (MF_VALIDATION_ERRORS_MAX + 1) * MF_API_FIELD_ERROR_JSON_MAX)
/* GET /v1/messages wraps the page PostgreSQL built (its length known) in
 * {"data":...,"has_more":false,"next_cursor":"..."}: the names, and a
 * cursor under 128 octets (api/messages.c cursor_encode), fit in this. */
#define MF_API_LIST_WRAP 256
/* GET /v1/messages page size. */
#define MF_LIST_LIMIT_MAX 100
#define MF_LIST_LIMIT_DEFAULT 20
/* GET /v1/suppressions page size. */
#define MF_SUPPRESSIONS_PAGE_MAX 100
#define MF_SUPPRESSIONS_PAGE_DEFAULT 50
/* "mailferry list": rows shown (it reads the database directly, so it
 * may show more than one API page). */
#define MF_CLI_LIST_MAX 10000
#define MF_CLI_LIST_DEFAULT 20
/* PostgreSQL's MaxAllocSize (src/include/utils/memutils.h, 1 GB - 1):
 * no single value can be larger, and no protocol message either
 * (PQ_LARGE_MESSAGE_LIMIT), so a parameter we build - an array literal of
 * a commit group (db/accept.c) - is useless beyond it.  It, not the
 * content, bounds the group's recipient arrays: at the extreme
 * (MF_COMMIT_BATCH_MAX writes of MF_BATCH_MAX messages of
 * MF_RECIPIENTS_MAX recipients, 2 * MF_ADDRESS_MAX + 3 octets each quoted
 * and escaped) they would need about 8 GB, and such a group fails at the
 * database whatever we allow here. */
#define MF_PG_VALUE_MAX (((size_t)1 << 30) - 1)
/* SQL text we build (db/accept.c's multi-row message INSERT for its
 * largest chunk, 64 rows, is under 12 KiB). */
#define MF_DB_STATEMENT_MAX 65536
/* Group commit: the most writes taken into one transaction. */
#define MF_COMMIT_BATCH_MAX 512
/* Committer threads, each with its own connection, taking groups from one
 * queue: while one group waits for its fsync the next is being written.
 * Threads after the first take work only when MF_COMMIT_SPILL_MSGS
 * messages are queued (db/committer.c; measured there). */
#define MF_COMMIT_THREADS 2
#define MF_COMMIT_SPILL_MSGS 64
/* API key rows are cached this long (a revocation takes effect within it). */
#define MF_AUTH_CACHE_TTL_MS 1000
/* Retry-After (seconds) of every 503 "unavailable": the pool reconnects
 * within about a second, and clients should not retry in a tight loop. */
#define MF_UNAVAILABLE_RETRY_AFTER "1"
/* Config file line length. */
#define MF_CONFIG_LINE_MAX 4096
/* Webhook response bodies are read up to this many bytes. */
#define MF_WEBHOOK_RESPONSE_MAX 4096
/* Webhook dispatcher threads per process (each one request at a time). */
#define MF_WEBHOOK_SENDERS 4
/* An endpoint failing without a success for this long is disabled. */
#define MF_WEBHOOK_DISABLE_AFTER (3L * 86400L)
/* After a rotation the old secret keeps signing for this long. */
#define MF_WEBHOOK_ROTATION_GRACE 86400L
/* A Retry-After larger than this is capped. */
#define MF_WEBHOOK_RETRY_AFTER_MAX 86400L
/* Endpoint URL length, description length, events per endpoint. */
#define MF_WEBHOOK_URL_MAX 2048
#define MF_WEBHOOK_DESCRIPTION_MAX 1024
/* Events per page of GET /v1/events; deliveries per page of the log. */
#define MF_EVENTS_PAGE_MAX 1000
#define MF_DELIVERIES_PAGE_MAX 100

/* HTTP server (api/gate.c, api/server.c).  Connections in all, and the
 * idle timeout libmicrohttpd applies once a connection is handed to it
 * (every byte read or written restarts it). */
#define MF_API_CONNECTIONS_MAX 4096
#define MF_API_IDLE_TIMEOUT_S 60
/* A request head (request line and headers) must fit in this many octets:
 * libmicrohttpd's default per-connection memory pool is 32 KiB. */
#define MF_API_HEAD_MAX 32768
/* ...and arrive in at most this many pieces: a client sends its head in
 * one or a few segments, a slowloris in many. */
#define MF_API_HEAD_PEEKS 64
/* Request-line method token length (the longest registered is 17). */
#define MF_API_METHOD_MAX 32
/* RFC 9112 §2.2: empty lines before the request line are ignored; we
 * ignore this many. */
#define MF_API_HEAD_EMPTY_LINES 2
/* The HTTP server's own log lines (libmicrohttpd, refused connections):
 * at most this many per window, the rest counted. */
#define MF_API_NETLOG_BURST 20
#define MF_API_NETLOG_WINDOW_MS 10000

/* Inbound SMTP server (bounce listener, sink).  RFC 5321 §4.5.3.1.8: at
 * least 100 recipients must be accepted; we accept no more.  §4.5.3.2.7:
 * the server waits at least 5 minutes for the next command. */
#define MF_SMTP_SERVER_RCPTS_MAX 100
#define MF_SMTP_SERVER_IDLE_TIMEOUT_MS 300000
#define MF_SMTP_SERVER_SESSIONS_DEFAULT 64
/* §4.5.3.2.7's 5 minutes are restarted by every command, so a client that
 * sends one every few minutes could keep a session forever, and 64 of them
 * would take every session.  The remedy is not shorter timeouts but a cap
 * per client address (as Postfix's smtpd_client_connection_count_limit)
 * and a deadline for the whole session; its 10 minutes cover a bounce
 * session with room to spare (the client waits up to 10 minutes for the
 * reply to the final dot alone, §4.5.3.2.6, but our reply is immediate). */
#define MF_SMTP_SERVER_SESSIONS_PER_ADDR 8
#define MF_SMTP_SERVER_SESSION_TIMEOUT_MS (10 * 60 * 1000)
/* A client that keeps sending bad commands is dropped after this many
 * (like Postfix's smtpd_hard_error_limit). */
#define MF_SMTP_SERVER_ERRORS_MAX 20
/* Input buffer of one inbound session; DATA lines longer than this are
 * passed through in pieces (only command lines have a hard limit). */
#define MF_SMTP_SERVER_INBUF 16384
/* Text of one reply line the server sends (code and CRLF excluded). */
#define MF_SMTP_SERVER_REPLY_TEXT 256
/* SMTP AUTH (RFC 4954 §4): a response line is at most 12288 octets of
 * base64; ours are an API key and a user name, so a command line's
 * MF_SMTP_LINE_MAX is plenty, and a longer line gets 500 5.5.6.  Decoded,
 * that is at most 3/4 of it. */
#define MF_SMTP_AUTH_RESPONSE_MAX (MF_SMTP_LINE_MAX * 3 / 4 + 4)
/* User name and password (an API key) of one AUTH, decoded. */
#define MF_SMTP_AUTH_USER_MAX 256
#define MF_SMTP_AUTH_PASS_MAX 256
/* SMTP submission (submit/): recipients per message (Postmark's and
 * our API's cap is 50; RFC 5321 §4.5.3.1.8 asks a relay for 100, and a
 * submission server may ask for less with 452 4.5.3, which clients
 * handle by sending the rest in another transaction), messages per
 * session (MAIL commands accepted, as Exim's smtp_accept_max_per_connection
 * and with its default, so that a MAIL/RCPT/RSET loop is bounded too),
 * sessions per client address, and the deadline for the whole session.
 * The deadline for one command is the configuration's
 * submission_command_timeout (RFC 5321 §4.5.3.2.7 asks 5 minutes of a
 * relay; a submission client is an application next door: 60 s). */
#define MF_SUBMIT_RCPTS_MAX MF_RECIPIENTS_MAX
#define MF_SUBMIT_MESSAGES_PER_SESSION 1000
#define MF_SUBMIT_SESSIONS_PER_ADDR 64
#define MF_SUBMIT_SESSIONS_MAX 512
#define MF_SUBMIT_SESSION_TIMEOUT_MS (30 * 60 * 1000)
/* AUTH failures: after this many in a row from one address, that address
 * waits (doubling from MF_SUBMIT_AUTH_BACKOFF_MS up to _MAX_MS) before its
 * next attempt is even looked at; addresses tracked at once. */
#define MF_SUBMIT_AUTH_FAILURES_FREE 3
#define MF_SUBMIT_AUTH_BACKOFF_MS 1000
#define MF_SUBMIT_AUTH_BACKOFF_MAX_MS (5 * 60 * 1000)
#define MF_SUBMIT_AUTH_TRACKED 1024
/* The Date: and Message-ID: fields submission adds to a message that
 * lacks them (RFC 5321 §6.4): under 64 + a UUID and helo_name each. */
#define MF_SUBMIT_ADDED_HEADERS_MAX (2 * (64 + MF_DOMAIN_MAX))
/* A recipient row id never needs more than this in a VERP address. */
#define MF_VERP_ADDRESS_MAX (MF_LOCAL_PART_MAX + 1 + MF_DOMAIN_MAX + 1)

/* Replay: recipients requeued per transaction, and dry-run sample size. */
#define MF_REPLAY_BATCH 1000
#define MF_REPLAY_SAMPLE_MAX 100
/* Retention: rows deleted or cleared per transaction, and the pause
 * between housekeeping rounds in seconds. */
#define MF_RETENTION_BATCH 500
#define MF_RETENTION_INTERVAL 60
/* The domain re-check (queue/domain_check.h): the longest pause in
 * seconds between its looks for due domains (shorter when
 * domain_recheck_interval is), so a domain is re-checked at most this
 * long after its interval ran out. */
#define MF_DOMAIN_RECHECK_POLL 300
/* Idempotency keys are kept this many seconds (INTERFACE.md: 24 h). */
#define MF_IDEMPOTENCY_TTL (24 * 3600)
/* A destination's control row (window, backoff, rate bucket) is dropped
 * after this long without traffic (db/retention.c). */
#define MF_DESTINATION_IDLE (24 * 3600)
/* Shutdown: the watchdog ends a stopping process this many seconds after
 * shutdown_grace, in case a component overran its own grace period. */
#define MF_SHUTDOWN_MARGIN 2
/* CLI: HTTP response bodies read by "mailferry send". */
#define MF_CLI_RESPONSE_MAX (1024 * 1024)
/* Parsing bounces (mail/mime_parse.c, bounce/dsn.c): outside input, so
 * every dimension is bounded. */
#define MF_BOUNCE_SIZE_MAX (10u * 1024u * 1024u)
#define MF_MIME_DEPTH_MAX 8
#define MF_MIME_PARTS_MAX 256
#define MF_MIME_HEADERS_MAX 256
#define MF_MIME_HEADER_VALUE_MAX 8192
#define MF_DSN_RCPTS_MAX 100
#define MF_DSN_FIELD_MAX 512

/* DKIM signing (mail/dkim.c).  Header fields one message can have, for
 * the signer's index: a composed message has at most
 * MF_CUSTOM_HEADERS_MAX custom fields and about 20 of its own. */
#define MF_DKIM_FIELDS_MAX 256
/* Octets of canonical header data kept for one signature: the signed
 * fields (mail/dkim.c's signed_headers, about 20 names), whose values the
 * send request's limits bound (MF_HEADER_VALUE_MAX per header, at most
 * MF_RECIPIENTS_MAX addresses in To and Cc) to well under this.  A message
 * whose signed fields pass it is not signed (dkim_sign fails). */
#define MF_DKIM_HEADER_DATA_MAX (1u << 20)
/* The DKIM-Signature field (RFC 6376 §3.5), and each tag while it is
 * written: fixed tags, d= (MF_DOMAIN_MAX), s=, the h= list of those
 * names, bh= (44) and b= (683 for RSA-4096), folded: under 4 KiB. */
#define MF_DKIM_SIGNATURE_MAX 8192
/* GET /metrics (api/health.c): series are created on first use, so their
 * number has no fixed bound; an exposition larger than this (some 60,000
 * series of 250 octets) is cut short rather than grow without limit. */
#define MF_METRICS_TEXT_MAX (16u * 1024u * 1024u)
/* An inbound message's buffer holds max_message_size and our Received:
 * line (smtpd/smtp_server.c): the HELO argument (under MF_SMTP_LINE_MAX),
 * a recipient (MF_ADDRESS_MAX), our host name (MF_DOMAIN_MAX) and under
 * 200 octets of fixed text and date. */
#define MF_SMTP_SERVER_TRACE_MAX (2 * MF_SMTP_LINE_MAX)

/* One log line (util/log.c): its logfmt text, before JSON conversion, is cut
 * at this many bytes; a libpq error or an SMTP reply fits many times over. */
#define MF_LOG_LINE_MAX 65536
/* A warning repeated by the same call site (a database outage, say) is
 * logged at most once per this many milliseconds (util/ratelimit.h). */
#define MF_LOG_REPEAT_MS 10000

#endif
