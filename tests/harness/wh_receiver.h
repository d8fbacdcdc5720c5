/*
 * wh_receiver.h - a webhook receiver for tests: a small HTTP server on
 * 127.0.0.1 (libmicrohttpd, test code only) that verifies every Standard
 * Webhooks signature independently (OpenSSL HMAC one-shot, not our signer)
 * and records what it saw.
 *
 * Its answers follow a script: "500,500,200" answers the first request for
 * a webhook-id 500, the second 500, then 200 (the last entry repeats).
 * All functions are thread-safe; strings returned are owned by the caller.
 */
#ifndef MF_TEST_WH_RECEIVER_H
#define MF_TEST_WH_RECEIVER_H

struct th_receiver;

struct th_receiver *th_receiver_start(const char *script);
/* The same on a given IPv4 address (e.g. 127.0.0.2) and port (0: any free
 * one); NULL when it cannot listen there. */
struct th_receiver *th_receiver_start_at(const char *script, const char *ip, int port);
/* The same over TLS with the given PEM key and certificate (contents). */
struct th_receiver *th_receiver_start_tls(const char *script, const char *key_pem, const char *cert_pem);
void th_receiver_free(struct th_receiver *r);
int th_receiver_port(struct th_receiver *r);
/* Secrets the signatures are checked against (any one valid signature
 * made with any of these passes). */
void th_receiver_set_secrets(struct th_receiver *r, const char *secret, const char *other);
void th_receiver_set_script(struct th_receiver *r, const char *script);
void th_receiver_set_delay_ms(struct th_receiver *r, int ms);
/* With on set, requests (those in progress and new ones) get no answer
 * until it is cleared: deliveries stay in flight for as long as a test
 * needs them there. */
void th_receiver_hold(struct th_receiver *r, int on);
/* Requests that have reached the hold and wait in it: their deliveries
 * cannot finish until the hold ends. */
int th_receiver_held(struct th_receiver *r);
/* Non-2xx answers carry "Retry-After: secs" when secs > 0; 3xx answers
 * always carry a Location pointing back at the receiver. */
void th_receiver_set_retry_after(struct th_receiver *r, int secs);

int th_receiver_requests(struct th_receiver *r);
/* Requests whose signature did not verify, or lacked a header. */
int th_receiver_bad(struct th_receiver *r);
/* Requests seen for this webhook-id. */
int th_receiver_count_id(struct th_receiver *r, const char *id);
/* Distinct webhook-ids answered with a 2xx. */
int th_receiver_distinct_ok(struct th_receiver *r);
/* The largest number of requests any one webhook-id got. */
int th_receiver_max_per_id(struct th_receiver *r);
/* Headers and body of the last request, "name: value\n" lines. */
char *th_receiver_last_headers(struct th_receiver *r);
char *th_receiver_last_body(struct th_receiver *r);
/* Waits until th_receiver_distinct_ok() >= n; ms waited or -1. */
int th_receiver_wait_ok(struct th_receiver *r, int n, int timeout_ms);

#endif
