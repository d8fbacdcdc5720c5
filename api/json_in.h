/*
 * json_in.h - request bodies to jansson values, fast.
 *
 * The result is exactly what json_loadb(body, len, JSON_REJECT_DUPLICATES)
 * returns - the same value, the same key order, the same error - for any
 * body that is well-formed UTF-8 (the caller checks that first,
 * validate_parse_json).  Most bodies are parsed by cJSON and converted;
 * whatever cJSON reads more leniently than jansson (numbers, control
 * characters, "\u0000", duplicate keys, a byte order mark, a top-level
 * scalar, trailing bytes) is handed to jansson itself, and so is every
 * body that does not parse.
 */
#ifndef MF_API_JSON_IN_H
#define MF_API_JSON_IN_H

#include <jansson.h>
#include <stddef.h>

/* A new reference, or NULL with err filled as json_loadb fills it. */
json_t *json_in_parse(const char *body, size_t len, json_error_t *err);

struct api_req;
/* The request body of a POST or PATCH that takes a JSON object (jansson,
 * duplicate keys refused): a new reference, or NULL after answering 400
 * invalid_json. */
json_t *json_in_body_object(struct api_req *req);

/* The fast path alone: the value, or NULL when it leaves the body to
 * jansson (for tests: a plain send request must not be left to it). */
json_t *json_in_fast(const char *body, size_t len);

#endif
