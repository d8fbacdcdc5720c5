/*
 * output.h - helpers the operator commands (status, list, replay, send)
 * share: JSON string output without a JSON library (jansson stays in api/),
 * time arguments, table cells.
 */
#ifndef MF_CLI_OUTPUT_H
#define MF_CLI_OUTPUT_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

/* Writes s as a JSON string literal, quotes included (RFC 8259 §7). */
void cli_json_str(FILE *out, const char *s);
/* The same, appended to b; -1 when b is full. */
int cli_json_buf(struct buf *b, const char *s);
/*
 * A time argument: an RFC 3339 date or date-time is passed through; a
 * duration such as "90m", "24h" or "7d" means that long before now.
 * Writes a timestamptz literal into out; returns 0 or -1.
 */
int cli_time_arg(const char *s, char *out, size_t outsz);
/*
 * s clipped to width characters ("..." marks a cut), into out; cuts fall
 * on UTF-8 character boundaries, also when out is too small.  Control
 * characters become spaces.  Returns out.
 */
const char *cli_clip(const char *s, int width, char *out, size_t outsz);
/* The same, padded with spaces to width characters (printf's %-30s counts bytes). */
const char *cli_cell(const char *s, int width, char *out, size_t outsz);
/* Room for a table cell of up to 80 characters of 4 UTF-8 bytes each. */
#define CLI_CELL_MAX (80 * 4 + 4)

#endif
