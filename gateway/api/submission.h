/* Submission bodies: parsing and validation of POST /api/v1/jobs. Knows
 * nothing of HTTP; the handler maps the result to a status code. */
#ifndef GW_SUBMISSION_H
#define GW_SUBMISSION_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

enum gateway_body_status {
	BODY_OK,
	BODY_MALFORMED, /* not readable JSON: syntax, UTF-8, duplicates, depth */
	BODY_INVALID,   /* JSON, but not a valid submission */
	BODY_NOMEM,
};

/* A valid submission in canonical form: compact JSON text, ready to store. */
struct gateway_submission {
	char *name;
	char *user; /* "anonymous" when the body names none */
	char *labels_json;
	char *spec_json;
	char *spec_shown_json; /* redacted for the API, or "": spec_json as is */
	char *team;      /* the team label, or NULL */
	json_t *labels;  /* the same labels and spec, parsed: placement uses */
	json_t *spec;    /* them rather than parse the text again */
};

#define GATEWAY_MAX_DEPTH 32

/* On BODY_MALFORMED, detail says why and where; on BODY_INVALID, *errors is a
 * new array of {"field", "message"} (caller decrefs) and detail sums it up. */
enum gateway_body_status gateway_submission_parse(const char *body, size_t len,
						  struct gateway_submission *out,
						  json_t **errors, char *detail);
void gateway_submission_release(struct gateway_submission *sub);

/* Parses a JSON request body with the gateway's rules: object at the top,
 * duplicate keys refused, nesting at most GATEWAY_MAX_DEPTH. NULL on error
 * with the reason in detail. */
json_t *gateway_json_parse(const char *body, size_t len, char *detail);

#endif
