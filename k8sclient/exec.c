/* Exec credential plugins (client.authentication.k8s.io), as kubectl runs
 * them: the command with its args, the gateway's environment plus the
 * plugin's env and KUBERNETES_EXEC_INFO, no terminal; an ExecCredential on
 * stdout. This is how EKS (aws eks get-token), GKE (gke-gcloud-auth-plugin)
 * and AKS (kubelogin) clusters hand out tokens. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "k8sclient/exec.h"

#define PLUGIN_TIMEOUT_MS 30000
#define MAX_OUTPUT (1u << 20)

extern char **environ;

/* environ less the names the plugin's env sets, then those, then the exec
 * info; the strings of extra are owned by the caller's json. */
static char **plugin_env(const json_t *env, const char *info)
{
	size_t n = 0, k = 0, i;
	json_t *e;
	char **out;

	while (environ[n])
		n++;
	out = calloc(n + json_array_size(env) + 2, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t j = 0; j < n; j++) {
		bool replaced = !strncmp(environ[j], "KUBERNETES_EXEC_INFO=", 21);

		json_array_foreach(env, i, e) {
			const char *name = json_string_value(json_object_get(e, "name"));
			size_t len = strlen(name);

			replaced = replaced || (!strncmp(environ[j], name, len) && environ[j][len] == '=');
		}
		if (!replaced && !(out[k++] = strdup(environ[j])))
			goto fail;
	}
	json_array_foreach(env, i, e)
		if (asprintf(&out[k++], "%s=%s", json_string_value(json_object_get(e, "name")),
			     json_string_value(json_object_get(e, "value"))) < 0) {
			out[--k] = NULL;
			goto fail;
		}
	if (asprintf(&out[k++], "KUBERNETES_EXEC_INFO=%s", info) < 0) {
		out[--k] = NULL;
		goto fail;
	}
	return out;
fail:
	for (size_t j = 0; j < k; j++)
		free(out[j]);
	free(out);
	return NULL;
}

static void free_strings(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Reads the child's stdout to its end, within the deadline. */
static enum gw_err read_output(int fd, struct gw_buf *out, char *err)
{
	int64_t deadline = gw_now_ms() + PLUGIN_TIMEOUT_MS;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - gw_now_ms();
		char chunk[4096];
		ssize_t n;
		int r;

		if (left <= 0) {
			gw_seterr(err, "gave no answer within %d s", PLUGIN_TIMEOUT_MS / 1000);
			return GW_EIO;
		}
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue; /* the deadline check ends it */
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? GW_OK : GW_EIO;
		if (gw_buf_append(out, chunk, (size_t)n) != GW_OK) {
			gw_seterr(err, "wrote more than %u bytes", MAX_OUTPUT);
			return GW_EINVAL;
		}
	}
}

/* The ExecCredential's token and expiry. */
static enum gw_err parse_credential(const char *text, const char *api, char **token, int64_t *expires_ms,
				    char *err)
{
	json_t *doc = json_loads(text, 0, NULL), *status;
	const char *kind, *version, *tok, *exp;
	enum gw_err rc = GW_EINVAL;

	kind = json_string_value(json_object_get(doc, "kind"));
	version = json_string_value(json_object_get(doc, "apiVersion"));
	status = json_object_get(doc, "status");
	tok = json_string_value(json_object_get(status, "token"));
	exp = json_string_value(json_object_get(status, "expirationTimestamp"));
	if (!doc || !kind || strcmp(kind, "ExecCredential")) {
		gw_seterr(err, "did not print an ExecCredential on stdout");
	} else if (!version || strcmp(version, api)) {
		gw_seterr(err, "answered apiVersion %s, but the kubeconfig asks for %s", version ? version : "none",
			  api);
	} else if (!tok || !*tok) {
		/* Client certificates from plugins are left out: the clouds'
		 * plugins give tokens. */
		gw_seterr(err, "gave no status.token (client certificates from plugins are not supported)");
	} else if (exp && gw_time_parse(exp, expires_ms)) {
		gw_seterr(err, "gave a status.expirationTimestamp that is not RFC 3339: %s", exp);
	} else {
		if (!exp)
			*expires_ms = INT64_MAX;
		*token = strdup(tok);
		rc = *token ? GW_OK : GW_ENOMEM;
	}
	json_decref(doc);
	return rc;
}

enum gw_err k8s_exec_credential(const json_t *exec, const char *server, bool insecure, char **token,
				int64_t *expires_ms, char *err)
{
	const char *command = json_string_value(json_object_get(exec, "command"));
	const char *api = json_string_value(json_object_get(exec, "apiVersion"));
	json_t *args = json_object_get(exec, "args"), *a;
	json_t *info_doc = json_pack("{s:s, s:s, s:{s:b, s:{s:s, s:b}}}", "apiVersion", api, "kind", "ExecCredential",
				     "spec", "interactive", 0, "cluster", "server", server,
				     "insecure-skip-tls-verify", insecure);
	char *info = info_doc ? json_dumps(info_doc, JSON_COMPACT) : NULL, **argv = NULL, **envp = NULL;
	char inner[GW_ERRLEN] = "";
	posix_spawn_file_actions_t fa;
	int pipefd[2] = {-1, -1}, status = 0, spawned;
	enum gw_err rc = GW_ENOMEM;
	struct gw_buf out;
	pid_t pid = -1;
	size_t i;

	*token = NULL;
	gw_buf_init(&out, MAX_OUTPUT);
	json_decref(info_doc);
	if (!info || !(argv = calloc(json_array_size(args) + 2, sizeof(*argv))) ||
	    !(envp = plugin_env(json_object_get(exec, "env"), info)))
		goto out;
	argv[0] = (char *)(uintptr_t)command;
	json_array_foreach(args, i, a)
		argv[i + 1] = (char *)(uintptr_t)json_string_value(a);
	if (pipe2(pipefd, O_CLOEXEC)) {
		gw_seterr(err, "exec plugin %s: pipe: %s", command, strerror(errno));
		rc = GW_EIO;
		goto out;
	}
	/* No terminal: stdin is empty; stderr goes where the gateway's does,
	 * as kubectl shows a plugin's messages. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	spawned = posix_spawnp(&pid, command, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	pipefd[1] = -1;
	if (spawned) {
		gw_seterr(err, "exec plugin %s: cannot run it: %s", command, strerror(spawned));
		rc = GW_EIO;
		goto out;
	}
	rc = read_output(pipefd[0], &out, inner);
	if (rc)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc) {
		gw_seterr(err, "exec plugin %s: %s", command, inner);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		gw_seterr(err, "exec plugin %s: %s %d (its stderr is in the gateway's)", command,
			  WIFEXITED(status) ? "exited with status" : "killed by signal",
			  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		rc = GW_EIO;
	} else if ((rc = gw_buf_append(&out, "", 1)) == GW_OK &&
		   (rc = parse_credential(out.data, api, token, expires_ms, inner))) {
		gw_seterr(err, "exec plugin %s: %s", command, inner);
	}
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	gw_buf_release(&out);
	free_strings(envp);
	free(argv);
	free(info);
	return rc;
}
