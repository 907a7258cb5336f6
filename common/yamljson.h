/* YAML (one document) to a jansson tree, for config, policy and kubeconfig
 * files. Plain scalars resolve by the YAML 1.2 core schema (null, booleans,
 * integers, floats); quoted and block scalars stay strings. Aliases,
 * duplicate keys and non-scalar keys are refused. */
#ifndef GW_YAMLJSON_H
#define GW_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

/* On success *doc is the new tree (an empty document gives an empty object)
 * and, when marks is not NULL, *marks maps each node's path ("a.b[2].c") to
 * [line, column], 1-based, for error messages. Errors name line and column. */
enum gw_err gw_yaml_load_file(const char *path, json_t **doc, json_t **marks,
			      char *err);
enum gw_err gw_yaml_load_string(const char *text, size_t len, json_t **doc,
				json_t **marks, char *err);

/* doc as a YAML document (block style, strings quoted where they would
 * read back as another type), in *out (caller frees). */
enum gw_err gw_yaml_dump(const json_t *doc, char **out, char *err);

#endif
