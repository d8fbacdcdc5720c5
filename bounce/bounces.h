/*
 * bounces.h - bounce processing: turning stored bounces (bounces_raw) into
 * recipient status changes, events and suppressions.
 *
 * bounce_process() claims one unprocessed row (SKIP LOCKED), parses it
 * (bounce/dsn.h), matches each recipient result to a recipients row (the
 * VERP token of the envelope recipient first, mail/verp.h; else the
 * returned Message-ID plus Final-Recipient), classifies it with
 * classify_reply() and applies it, all in one transaction:
 *   Action: failed   -> recipient bounced + message.bounced event; a
 *                       permanent bad_mailbox/bad_domain also suppresses
 *                       the address (never policy, reputation or spam);
 *   Action: delayed  -> a message.deferred event only;
 *   anything else    -> nothing.
 * A VERP address whose HMAC does not verify changes nothing (logged,
 * outcome "forged_token").  Auto-replies change nothing ("not_bounce").
 *
 * A bounce that matches a recipient still 'sending' waits for the
 * delivery's outcome: a receiver that answered 250 to DATA reports a later
 * failure by mail (RFC 5321 section 6.1, an RFC 3464 DSN), and that report
 * can arrive before the recorder has written the 250.  Applied at once it
 * would make the recipient bounced and drop the late 'delivered', losing
 * message.delivered from the timeline.  So the row is left unprocessed
 * (db_bounce_tx_wait) until the recipient has left 'sending', for at most
 * lease_time (0: no waiting); then it is applied whatever the status.
 *
 * bounce_processor_new() runs that in a thread (the "bounces" role): it
 * LISTENs mailferry_bounces and also sweeps every few seconds, which is
 * when a waiting bounce whose recipient has left 'sending' is taken again.
 */
#ifndef MF_BOUNCE_BOUNCES_H
#define MF_BOUNCE_BOUNCES_H

#include <stddef.h>
#include <stdint.h>

#include "bounce/dsn.h"

struct config;
struct db_pool;

struct bounce_rcpt_result {
	char recipient[MF_ADDRESS_MAX + 1];   /* Final-Recipient (or the matched row's address) */
	enum dsn_action action;
	char status[16];                      /* the status classified */
	const char *matched_by;               /* "verp", "message_id" or NULL */
	int64_t recipient_id;                 /* 0 when unmatched */
	char message_id[40];                  /* uuid of the message, "" when unmatched */
	const char *bounce_type;              /* "permanent"/"transient"/NULL */
	const char *category;                 /* NULL when not classified */
	const char *result;                   /* "bounced", "delayed", "unchanged", "unmatched", "ignored" */
	int suppressed;                       /* the address was added to the suppression list now */
};

struct bounce_result {
	int64_t bounce_id;
	enum dsn_kind kind;
	char outcome[32];     /* bounces_raw.outcome: bounced, delayed, unmatched, ignored,
				 not_bounce, forged_token, unparsable */
	struct bounce_rcpt_result rcpts[MF_DSN_RCPTS_MAX];
	int nrcpts;
};

/* What bounce_process() did. */
enum bounce_process_rc {
	BOUNCE_PROCESS_ERROR = -1,  /* rolled back, err set; the row stays unprocessed */
	BOUNCE_PROCESS_NONE = 0,    /* no row ready to claim */
	BOUNCE_PROCESS_DONE = 1,    /* processed: *res filled */
	BOUNCE_PROCESS_WAITING = 2, /* a matched recipient is still 'sending': the row waits,
				       unprocessed (res: bounce_id, outcome "waiting") */
};

/*
 * Processes one unprocessed, ready bounce (only_id > 0: that row only).
 * res may be NULL.
 */
enum bounce_process_rc bounce_process(struct db_pool *pool, const struct config *cfg, int64_t only_id,
				      struct bounce_result *res, char *err, size_t errlen);

struct bounce_processor;
struct metrics;
/* metrics may be NULL; it counts mailferry_bounces_total{source="dsn"}. */
struct bounce_processor *bounce_processor_new(const struct config *cfg, struct db_pool *pool,
					      struct metrics *metrics);
/* Stops the thread (after the bounce in hand) and frees; NULL: no-op. */
void bounce_processor_free(struct bounce_processor *bp);

#endif
