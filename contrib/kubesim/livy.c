/* A shared Spark server's Livy REST API (interactive sessions and their
 * statements, https://livy.apache.org/docs/latest/rest-api.html), behind
 * the API server's service proxy on port 8998: the endpoint is a Running
 * pod labelled sparkgw/shared-server. Its sessions share the server's one
 * Spark application, so a session is idle at once and statements of
 * different sessions run side by side; a session's own statements run one
 * after another, as in Livy.
 *
 * A statement runs for the session conf's spark.kubesim.durationSeconds
 * (default 1) and fails when spark.kubesim.exitCode is not 0. States are
 * worked out from the clock when asked. The sessions live as long as the
 * pod (keyed by its uid): a replaced server starts with none. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "contrib/kubesim/kubesim.h"

#define SESSION_START_MS 100

static const char *jstr(const json_t *v)
{
	return json_string_value(v) ? json_string_value(v) : "";
}

static json_int_t jint(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

static void answer(struct ks_proxied *out, unsigned code, json_t *body /* stolen */)
{
	out->code = code;
	out->content_type = "application/json";
	out->body = json_dumps(body, JSON_COMPACT);
	out->len = out->body ? strlen(out->body) : 0;
	json_decref(body);
	if (!out->body)
		out->code = 500;
}

static void msg(struct ks_proxied *out, unsigned code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void msg(struct ks_proxied *out, unsigned code, const char *fmt, ...)
{
	char text[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	answer(out, code, json_pack("{s:s}", "msg", text));
}

/* A statement's state now: waiting, running, available (its output then
 * set), or cancelled as it was left. */
static const char *statement_state(json_t *s, int64_t now)
{
	const char *state = jstr(json_object_get(s, "state"));

	if (!strcmp(state, "cancelled") || !strcmp(state, "available") || !strcmp(state, "error"))
		return state;
	if (now < jint(s, "_starts"))
		state = "waiting";
	else if (now < jint(s, "_ends"))
		state = "running";
	else
		state = "available";
	json_object_set_new(s, "state", json_string(state));
	if (strcmp(state, "waiting"))
		json_object_set_new(s, "started", json_integer(jint(s, "_starts")));
	json_object_set_new(s, "progress", json_real(!strcmp(state, "available") ? 1.0 : 0.0));
	if (!strcmp(state, "available")) {
		json_object_set_new(s, "completed", json_integer(jint(s, "_ends")));
		if (jint(s, "_exit"))
			json_object_set_new(s, "output", json_pack("{s:s, s:i, s:s, s:s, s:[s]}", "status", "error",
								   "execution_count", (int)jint(s, "id"), "ename",
								   "org.apache.spark.sql.AnalysisException", "evalue",
								   "the statement failed (spark.kubesim.exitCode)",
								   "traceback", "org.apache.spark.sql.AnalysisException"));
		else
			json_object_set_new(s, "output", json_pack("{s:s, s:i, s:{s:{s:{s:s, s:[]}, s:[]}}}", "status",
								   "ok", "execution_count", (int)jint(s, "id"), "data",
								   "application/json", "schema", "type", "struct",
								   "fields", "data"));
	}
	return state;
}

/* The session's state now: starting, then busy while a statement waits
 * or runs, else idle. */
static void session_now(json_t *session, int64_t now)
{
	json_t *statements = json_object_get(session, "_statements"), *s;
	const char *state = now < jint(session, "_created") + SESSION_START_MS ? "starting" : "idle";
	size_t i;

	json_array_foreach(statements, i, s) {
		const char *st = statement_state(s, now);

		if (!strcmp(st, "waiting") || !strcmp(st, "running"))
			state = "busy";
	}
	json_object_set_new(session, "state", json_string(state));
}

/* What a client sees: no field of the simulation's own (they begin '_'). */
static json_t *shown(json_t *obj)
{
	json_t *copy = json_object();
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
		if (*k != '_')
			json_object_set(copy, k, v);
	return copy;
}

static json_t *session_shown(json_t *session, int64_t now)
{
	session_now(session, now);
	return shown(session);
}

static void create_session(json_t *server, const char *body, size_t len, int64_t now, struct ks_proxied *out)
{
	json_t *req = json_loadb(body, len, 0, NULL), *sessions = json_object_get(server, "sessions"), *s;
	const char *name = json_string_value(json_object_get(req, "name")), *k;
	json_t *conf = json_object_get(req, "conf");
	char id[24];

	if (!json_is_object(req) || (json_object_get(req, "conf") && !json_is_object(conf))) {
		json_decref(req);
		msg(out, 400, "%s", "the request body must be a JSON object with an object conf");
		return;
	}
	json_object_foreach(sessions, k, s)
		if (name && !strcmp(jstr(json_object_get(s, "name")), name)) {
			msg(out, 400, "Duplicate session name: %s", name);
			json_decref(req);
			return;
		}
	snprintf(id, sizeof(id), "%lld", (long long)jint(server, "next"));
	s = json_pack("{s:I, s:o, s:s, s:s?, s:s, s:[], s:I, s:o, s:[]}", "id", jint(server, "next"), "name",
		      name ? json_string(name) : json_null(), "kind", json_string_value(json_object_get(req, "kind"))
		      ? json_string_value(json_object_get(req, "kind")) : "shared", "proxyUser",
		      json_string_value(json_object_get(req, "proxyUser")), "state", "starting", "log", "_created",
		      (json_int_t)now, "_conf", conf ? json_incref(conf) : json_object(), "_statements");
	json_object_set_new(s, "appId", json_string(jstr(json_object_get(server, "appId"))));
	json_object_set_new(server, "next", json_integer(jint(server, "next") + 1));
	json_object_set_new(sessions, id, s);
	json_decref(req);
	answer(out, 201, session_shown(s, now));
}

static const char *conf_get(const json_t *session, const char *key, const char *def)
{
	const char *v = json_string_value(json_object_get(json_object_get(session, "_conf"), key));

	return v ? v : def;
}

static void create_statement(json_t *session, const char *body, size_t len, int64_t now, struct ks_proxied *out)
{
	json_t *req = json_loadb(body, len, 0, NULL), *statements = json_object_get(session, "_statements"), *s;
	json_t *last = json_array_get(statements, json_array_size(statements) - 1);
	int64_t starts = now, runs = (int64_t)(strtod(conf_get(session, "spark.kubesim.durationSeconds", "1"), NULL) * 1000);

	if (!json_is_object(req) || !json_is_string(json_object_get(req, "code"))) {
		json_decref(req);
		msg(out, 400, "%s", "the request body must be a JSON object with a string code");
		return;
	}
	session_now(session, now);
	if (!strcmp(jstr(json_object_get(session, "state")), "starting"))
		starts = jint(session, "_created") + SESSION_START_MS;
	if (last && !strcmp(jstr(json_object_get(last, "state")), "cancelled"))
		last = NULL;
	if (last && jint(last, "_ends") > starts)
		starts = jint(last, "_ends");
	s = json_pack("{s:I, s:O, s:s, s:n, s:f, s:i, s:i, s:I, s:I, s:i}", "id", (json_int_t)json_array_size(statements),
		      "code", json_object_get(req, "code"), "state", "waiting", "output", "progress", 0.0, "started", 0,
		      "completed", 0, "_starts", (json_int_t)starts, "_ends", (json_int_t)(starts + runs), "_exit",
		      atoi(conf_get(session, "spark.kubesim.exitCode", "0")));
	json_array_append_new(statements, s);
	json_decref(req);
	statement_state(s, now);
	answer(out, 201, shown(s));
}

/* The pod's Livy state, made when first asked. */
static json_t *server_of(struct ks_state *st, const json_t *pod)
{
	const json_t *meta = json_object_get(pod, "metadata");
	const char *uid = jstr(json_object_get(meta, "uid"));
	json_t *server = json_object_get(st->livy, uid);

	if (!server) {
		char app[64];

		snprintf(app, sizeof(app), "spark-%.32s", uid);
		server = json_pack("{s:i, s:{}, s:s}", "next", 0, "sessions", "appId", app);
		json_object_set_new(st->livy, uid, server);
	}
	return server;
}

void ks_livy(struct ks_state *st, const json_t *pod, const char *method, const char *path, const char *body,
	     size_t len, struct ks_proxied *out)
{
	json_t *server = server_of(st, pod), *sessions = json_object_get(server, "sessions"), *session;
	int64_t now = gw_now_ms();
	char sid[24] = "", rest[64] = "";
	long long stmt = -1;
	int n = 0;

	if (!strncmp(path, "sessions/", 9))
		sscanf(path + 9, "%23[0-9]%n", sid, &n);
	if (*sid)
		snprintf(rest, sizeof(rest), "%s", path + 9 + n);
	if (!strcmp(path, "sessions") || !strncmp(path, "sessions?", 9)) {
		if (!strcmp(method, "POST")) {
			create_session(server, body, len, now, out);
		} else if (!strcmp(method, "GET")) {
			json_t *list = json_array();
			const char *k;

			json_object_foreach(sessions, k, session)
				json_array_append_new(list, session_shown(session, now));
			answer(out, 200, json_pack("{s:i, s:I, s:o}", "from", 0, "total", (json_int_t)json_array_size(list),
						   "sessions", list));
		} else {
			msg(out, 405, "%s", "method not allowed");
		}
		return;
	}
	if (!*sid || !(session = json_object_get(sessions, sid))) {
		msg(out, 404, "Session '%s' not found.", sid);
		return;
	}
	if (!*rest && !strcmp(method, "GET")) {
		answer(out, 200, session_shown(session, now));
	} else if (!*rest && !strcmp(method, "DELETE")) {
		json_object_del(sessions, sid);
		msg(out, 200, "%s", "deleted");
	} else if (!strcmp(rest, "/state") && !strcmp(method, "GET")) {
		session_now(session, now);
		answer(out, 200, json_pack("{s:O, s:O}", "id", json_object_get(session, "id"), "state",
					   json_object_get(session, "state")));
	} else if (!strcmp(rest, "/statements") && !strcmp(method, "POST")) {
		create_statement(session, body, len, now, out);
	} else if (!strcmp(rest, "/statements") && !strcmp(method, "GET")) {
		json_t *list = json_array(), *s;
		size_t i;

		session_now(session, now);
		json_array_foreach(json_object_get(session, "_statements"), i, s)
			json_array_append_new(list, shown(s));
		answer(out, 200, json_pack("{s:I, s:o}", "total_statements", (json_int_t)json_array_size(list),
					   "statements", list));
	} else if (sscanf(rest, "/statements/%lld%n", &stmt, &n) == 1 && stmt >= 0) {
		json_t *s = json_array_get(json_object_get(session, "_statements"), (size_t)stmt);
		const char *after = rest + n;

		if (!s) {
			msg(out, 404, "Statement not found in session %s.", sid);
		} else if (!*after && !strcmp(method, "GET")) {
			statement_state(s, now);
			answer(out, 200, shown(s));
		} else if (!strcmp(after, "/cancel") && !strcmp(method, "POST")) {
			const char *state = statement_state(s, now);

			if (!strcmp(state, "waiting") || !strcmp(state, "running")) {
				json_object_set_new(s, "state", json_string("cancelled"));
				json_object_set_new(s, "completed", json_integer(now));
			}
			msg(out, 200, "%s", "canceled");
		} else {
			msg(out, 404, "%s", "no such resource");
		}
	} else {
		msg(out, 404, "%s", "no such resource");
	}
}
