/* Internal to k8sclient: running a kubeconfig's exec credential plugin. */
#ifndef GW_K8S_EXEC_H
#define GW_K8S_EXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* Runs the plugin (exec as k8s_kubeconfig_load keeps it) for a cluster at
 * server and returns its ExecCredential's token in *token (the caller's)
 * and its expirationTimestamp in *expires_ms (INT64_MAX when it gives
 * none: good until the server refuses it). */
enum gw_err k8s_exec_credential(const json_t *exec, const char *server, bool insecure, char **token,
				int64_t *expires_ms, char *err);

#endif
