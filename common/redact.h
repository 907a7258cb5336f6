/* Secrets out of what the gateway shows: Spark properties whose keys look
 * secret (Spark's own spark.redaction.regex default, "(?i)secret|password|
 * token|access[.]key", plus "credential") keep their key and lose their
 * value in API responses and logs. The clusters still get the values. */
#ifndef GW_REDACT_H
#define GW_REDACT_H

#include <jansson.h>
#include <stdbool.h>

#define GW_REDACTED "*********(redacted)"

bool gw_secret_key(const char *key);
/* Whether JSON text names anything a secret key would (keys or values):
 * when false, redacting the document changes nothing. */
bool gw_redact_may_apply(const char *json_text);
/* Replaces secret values in an object of properties: key -> string, or
 * key -> {"value": string, ...} (the composed conf). */
void gw_redact_conf(json_t *conf);
/* Redacts, anywhere in a JSON document (a spec, a manifest), the values
 * of objects named sparkConf and hadoopConf, and the lines of
 * spark.properties texts. */
void gw_redact_document(json_t *doc);

#endif
