/* Kubernetes names, labels and label selectors: the rules of
 * k8s.io/apimachinery (validation.IsQualifiedName, IsValidLabelValue,
 * IsDNS1123Label, labels.Parse), shared by the gateway and kubesim. */
#ifndef GW_LABELS_H
#define GW_LABELS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Each returns true when valid; otherwise false and a reason in err. */
bool gw_dns1123_label_valid(const char *s, char *err);
bool gw_dns1123_subdomain_valid(const char *s, char *err);
bool gw_label_key_valid(const char *s, char *err);
bool gw_label_value_valid(const char *s, char *err);

enum gw_sel_op {
	GW_SEL_EQ,         /* key=value, key==value */
	GW_SEL_NEQ,        /* key!=value (true when key is absent) */
	GW_SEL_IN,         /* key in (a,b) */
	GW_SEL_NOTIN,      /* key notin (a,b) (true when key is absent) */
	GW_SEL_EXISTS,     /* key */
	GW_SEL_NOT_EXISTS, /* !key */
	GW_SEL_GT,         /* key>N: integer comparison */
	GW_SEL_LT,         /* key<N */
};

struct gw_sel_req {
	char *key;
	enum gw_sel_op op;
	char **values; /* EQ/NEQ/GT/LT: one; IN/NOTIN: one or more */
	size_t nvalues;
};

/* A parsed selector: the conjunction of its requirements. Read-only for
 * callers; the empty selector matches everything. */
struct gw_selector {
	struct gw_sel_req *reqs;
	size_t n;
};

/* GW_EINVAL with the position and reason in err on bad syntax. */
enum gw_err gw_selector_parse(const char *text, struct gw_selector **out,
			      char *err);
void gw_selector_free(struct gw_selector *sel);
/* labels: a JSON object of string values (NULL counts as empty). */
bool gw_selector_matches(const struct gw_selector *sel, const json_t *labels);

#endif
