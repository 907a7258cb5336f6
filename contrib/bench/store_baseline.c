/* The store baseline of `make bench`: raw SQLite inserts of what one
 * submission writes (its job row, one row per label, its QUEUED event and
 * its idempotency key) into the gateway's own schema, WAL and
 * synchronous=FULL as the gateway runs, without the gateway: first one
 * transaction per job, then 64 jobs per transaction. Prints one JSON
 * object: jobs per second for each.
 *
 * usage: bench-store-baseline DB BODY.json SECONDS */
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern const char *const store_migrations[];
extern const size_t store_migrations_count;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "sqlite: %s\n", msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int step(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

struct shape {
	char *labels_json, *spec_json;
	const char *name;
	json_t *labels;
	sqlite3_stmt *job, *label, *event, *idem;
};

static int insert_job(sqlite3 *db, const struct shape *s, long n)
{
	const unsigned char sha[32] = {(unsigned char)n};
	int64_t now = (int64_t)(now_s() * 1000), seq;
	char id[32], key[48];
	const char *k;
	json_t *v;

	snprintf(id, sizeof(id), "jbaseline%012ld", n);
	snprintf(key, sizeof(key), "baseline-%ld", n);
	sqlite3_bind_text(s->job, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->job, 2, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->job, 3, "bench", -1, SQLITE_STATIC);
	sqlite3_bind_text(s->job, 4, s->labels_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->job, 5, s->spec_json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->job, 6, now);
	if (step(db, s->job))
		return -1;
	seq = sqlite3_last_insert_rowid(db);
	json_object_foreach(s->labels, k, v) {
		sqlite3_bind_int64(s->label, 1, seq);
		sqlite3_bind_text(s->label, 2, k, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->label, 3, json_string_value(v), -1, SQLITE_STATIC);
		if (step(db, s->label))
			return -1;
	}
	sqlite3_bind_int64(s->event, 1, seq);
	sqlite3_bind_int64(s->event, 2, now);
	if (step(db, s->event))
		return -1;
	sqlite3_bind_text(s->idem, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s->idem, 2, sha, sizeof(sha), SQLITE_STATIC);
	sqlite3_bind_int64(s->idem, 3, seq);
	sqlite3_bind_int64(s->idem, 4, now);
	return step(db, s->idem);
}

/* Jobs per second over `seconds`, `per_txn` jobs to a commit. */
static double run(sqlite3 *db, const struct shape *s, int per_txn, double seconds, long *next)
{
	double start = now_s(), end = start + seconds;
	long done = 0;

	while (now_s() < end) {
		if (exec(db, "BEGIN"))
			return -1;
		for (int i = 0; i < per_txn; i++)
			if (insert_job(db, s, (*next)++))
				return -1;
		if (exec(db, "COMMIT"))
			return -1;
		done += per_txn;
	}
	return (double)done / (now_s() - start);
}

int main(int argc, char **argv)
{
	struct shape s = {0};
	json_error_t jerr;
	json_t *body = NULL;
	sqlite3 *db = NULL;
	double seconds, one, batched;
	long next = 0;
	int rc = 1;

	if (argc != 4 || (seconds = atof(argv[3])) <= 0) {
		fprintf(stderr, "usage: %s DB BODY.json SECONDS\n", argv[0]);
		return 2;
	}
	if (!(body = json_load_file(argv[2], 0, &jerr))) {
		fprintf(stderr, "%s: %s\n", argv[2], jerr.text);
		return 1;
	}
	s.labels = json_object_get(body, "labels");
	s.name = json_string_value(json_object_get(body, "name"));
	s.labels_json = json_dumps(s.labels, JSON_COMPACT);
	s.spec_json = json_dumps(json_object_get(body, "spec"), JSON_COMPACT);
	if (!s.name || !s.labels_json || !s.spec_json) {
		fprintf(stderr, "%s: needs name, labels and spec\n", argv[2]);
		goto fail;
	}
	if (sqlite3_open(argv[1], &db) != SQLITE_OK ||
	    exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
		     " PRAGMA foreign_keys = ON"))
		goto fail;
	for (size_t i = 0; i < store_migrations_count; i++)
		if (exec(db, store_migrations[i]))
			goto fail;
	if (sqlite3_prepare_v2(db, "INSERT INTO jobs (id, name, user, state, labels, spec, created_ms,"
				   " updated_ms, rv, priority, team, pool, cores_milli, memory_mib, gpus, ttl_s)"
				   " VALUES (?1, ?2, ?3, 'QUEUED', ?4, ?5, ?6, ?6, 0, 4, 'bench', '', 3000,"
				   " 12288, 0, -1)", -1, &s.job, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO job_labels (job_seq, key, value, state)"
				   " VALUES (?1, ?2, ?3, 'QUEUED')", -1, &s.label, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO job_events (job_seq, time_ms, state, previous, reason)"
				   " VALUES (?1, ?2, 'QUEUED', NULL, 'Submitted')", -1, &s.event, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO idempotency_keys (user, key, body_sha256, job_seq,"
				   " created_ms) VALUES ('bench', ?1, ?2, ?3, ?4)", -1, &s.idem, NULL)) {
		fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
		goto fail;
	}
	if ((one = run(db, &s, 1, seconds, &next)) < 0 ||
	    (batched = run(db, &s, 64, seconds, &next)) < 0)
		goto fail;
	printf("{\"jobs_per_s_1_per_txn\": %.0f, \"jobs_per_s_64_per_txn\": %.0f}\n", one, batched);
	rc = 0;
fail:
	sqlite3_finalize(s.job);
	sqlite3_finalize(s.label);
	sqlite3_finalize(s.event);
	sqlite3_finalize(s.idem);
	sqlite3_close(db);
	free(s.labels_json);
	free(s.spec_json);
	json_decref(body);
	return rc;
}
