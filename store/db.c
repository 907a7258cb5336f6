/* SQLite and PostgreSQL behind store/db.h. */
#include "store/db.h"

#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* PostgreSQL type oids (catalog/pg_type.h is a server header). */
#define OID_BYTEA 17
#define OID_INT8 20

struct db_conn {
	enum db_driver driver;
	sqlite3 *lite;
	int lite_rc;            /* last SQLite result */
	int64_t data_version;   /* last seen, for db_notified */
	void (*row_fn)(void *arg, int64_t rowid);
	void *row_arg;
	char row_table[32];

	PGconn *pg;
	char pg_msg[GW_ERRLEN]; /* last failure */
	char sqlstate[6];
	long changes;
	unsigned char prepared[DB_SLOTS]; /* slots prepared on this session */
	int backend_pid;
	bool reader;            /* refuses writes: a read may be tried again */
	char channel[64];       /* listened to; again after a reconnect */
};

struct db_stmt {
	struct db_conn *c;
	sqlite3_stmt *lite;

	char *sql;              /* PostgreSQL text, with $N */
	int slot;
	int nparams;
	const char **values;
	int *lengths, *formats;
	unsigned *types;        /* Oid */
	char (*ints)[24];       /* the text of integer parameters */
	PGresult *res;
	int row, nrows;
	unsigned char *blob;    /* last blob column read, unescaped */
};

enum db_driver db_driver(const struct db_conn *c)
{
	return c->driver;
}

void db_version(const struct db_conn *c, char *out, size_t len)
{
	int v;

	if (c->driver == DB_SQLITE) {
		snprintf(out, len, "%s", sqlite3_libversion());
		return;
	}
	v = PQserverVersion(c->pg); /* 150018 for 15.18 */
	snprintf(out, len, "%d.%d", v / 10000, v % 10000);
}

/* ---- SQLite ---- */

static void lite_row_change(void *arg, int op, const char *db, const char *table, sqlite3_int64 rowid)
{
	struct db_conn *c = arg;

	(void)op;
	(void)db;
	if (c->row_fn && strcmp(table, c->row_table) == 0)
		c->row_fn(c->row_arg, rowid);
}

void db_on_row_change(struct db_conn *c, const char *table, void (*fn)(void *arg, int64_t rowid), void *arg)
{
	if (c->driver != DB_SQLITE)
		return;
	snprintf(c->row_table, sizeof(c->row_table), "%s", table);
	c->row_fn = fn;
	c->row_arg = arg;
	sqlite3_update_hook(c->lite, lite_row_change, c);
}

static enum gw_err lite_err(struct db_conn *c, int rc, char *err)
{
	gw_seterr(err, "sqlite: %s", c->lite ? sqlite3_errmsg(c->lite) : sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return GW_ENOMEM;
	case SQLITE_FULL:
		return GW_EFULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return GW_EBUSY;
	case SQLITE_CONSTRAINT:
		return GW_ECONFLICT;
	default:
		return GW_EIO;
	}
}

static enum gw_err lite_connect(struct db_conn *c, const char *path, bool reader, bool sync_full, char *err)
{
	char pragmas[256];
	int rc = sqlite3_open_v2(path, &c->lite, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);

	if (rc != SQLITE_OK)
		return lite_err(c, rc, err);
	sqlite3_busy_timeout(c->lite, 5000);
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;"
		 " PRAGMA foreign_keys = ON; PRAGMA query_only = %d;",
		 sync_full ? "FULL" : "NORMAL", reader ? 1 : 0);
	return db_exec(c, pragmas, err);
}

/* ---- PostgreSQL ---- */

/* Notices ("relation exists, skipping") are not errors; libpq would print
 * them on stderr. */
static void pg_notice(void *arg, const char *message)
{
	(void)arg;
	gw_log(GW_LOG_DEBUG, "postgres: %s", message);
}

static void pg_fail(struct db_conn *c, const PGresult *res)
{
	const char *msg = res ? PQresultErrorMessage(res) : "";
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	size_t n;

	if (!msg || !*msg)
		msg = PQerrorMessage(c->pg);
	/* The first line: the rest points into the statement's text. */
	if (!msg || !*msg)
		msg = "connection lost";
	snprintf(c->pg_msg, sizeof(c->pg_msg), "postgres: %.*s", (int)strcspn(msg, "\n"), msg);
	n = strlen(c->pg_msg);
	while (n && isspace((unsigned char)c->pg_msg[n - 1]))
		c->pg_msg[--n] = '\0';
	snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "");
}

static enum gw_err pg_session(struct db_conn *c, bool reader, char *err)
{
	char sql[160];

	memset(c->prepared, 0, sizeof(c->prepared));
	c->backend_pid = PQbackendPID(c->pg);
	PQsetNoticeProcessor(c->pg, pg_notice, NULL);
	snprintf(sql, sizeof(sql), "SET client_min_messages = warning; SET default_transaction_read_only = %s",
		 reader ? "on" : "off");
	if (db_exec(c, sql, err))
		return GW_EIO;
	if (c->channel[0]) {
		snprintf(sql, sizeof(sql), "LISTEN %s", c->channel);
		return db_exec(c, sql, err);
	}
	return GW_OK;
}

static enum gw_err pg_connect(struct db_conn *c, const char *dsn, bool reader, char *err)
{
	/* The DSN comes last, so that what it says wins over these defaults. */
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *values[] = {"5", "sparkgw", dsn, NULL};

	c->pg = PQconnectdbParams(keys, values, 1);
	if (!c->pg) {
		gw_seterr(err, "postgres: out of memory");
		return GW_ENOMEM;
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		pg_fail(c, NULL);
		gw_seterr(err, "%s", c->pg_msg);
		return GW_EIO;
	}
	return pg_session(c, reader, err);
}

/* ?N to $N, and a bare ? to the next number (as SQLite numbers them),
 * outside quoted text. */
static char *pg_sql(const char *sql, int *nparams)
{
	char *out = malloc(strlen(sql) * 2 + 1), *o = out;
	int max = 0;
	char quote = 0;

	if (!out)
		return NULL;
	for (const char *p = sql; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
			*o++ = *p;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
			*o++ = *p;
		} else if (*p == '?') {
			int n = 0;

			while (isdigit((unsigned char)p[1]))
				n = n * 10 + (*++p - '0');
			if (n == 0)
				n = max + 1;
			if (n > max)
				max = n;
			o += sprintf(o, "$%d", n);
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	*nparams = max;
	return out;
}

enum gw_err db_connect(enum db_driver driver, const char *target, bool reader, bool sync_full,
		       struct db_conn **out, char *err)
{
	struct db_conn *c = calloc(1, sizeof(*c));
	enum gw_err rc;

	*out = NULL;
	if (!c)
		return GW_ENOMEM;
	c->driver = driver;
	c->reader = reader;
	rc = driver == DB_SQLITE ? lite_connect(c, target, reader, sync_full, err) : pg_connect(c, target, reader, err);
	if (rc) {
		db_close(c);
		return rc;
	}
	*out = c;
	return GW_OK;
}

void db_close(struct db_conn *c)
{
	if (!c)
		return;
	if (c->lite)
		sqlite3_close(c->lite);
	if (c->pg)
		PQfinish(c->pg);
	free(c);
}

enum gw_err db_reconnect(struct db_conn *c, char *err)
{
	if (c->driver != DB_POSTGRES || PQstatus(c->pg) == CONNECTION_OK)
		return GW_OK;
	PQreset(c->pg);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		pg_fail(c, NULL);
		gw_seterr(err, "%s", c->pg_msg);
		return GW_EIO;
	}
	gw_log(GW_LOG_INFO, "store: reconnected to postgres");
	return pg_session(c, c->reader, err);
}

struct db_stmt *db_prepare(struct db_conn *c, const char *sql, int slot, char *err)
{
	struct db_stmt *st = calloc(1, sizeof(*st));
	int rc;

	if (!st) {
		gw_seterr(err, "out of memory");
		return NULL;
	}
	st->c = c;
	st->slot = slot >= 0 && slot < DB_SLOTS ? slot : -1;
	if (c->driver == DB_SQLITE) {
		rc = sqlite3_prepare_v3(c->lite, sql, -1, st->slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0, &st->lite,
					NULL);
		if (rc != SQLITE_OK) {
			c->lite_rc = rc;
			lite_err(c, rc, err);
			free(st);
			return NULL;
		}
		return st;
	}
	if (!(st->sql = pg_sql(sql, &st->nparams)))
		goto oom;
	if (st->nparams) {
		st->values = calloc((size_t)st->nparams, sizeof(*st->values));
		st->lengths = calloc((size_t)st->nparams, sizeof(*st->lengths));
		st->formats = calloc((size_t)st->nparams, sizeof(*st->formats));
		st->types = calloc((size_t)st->nparams, sizeof(*st->types));
		st->ints = calloc((size_t)st->nparams, sizeof(*st->ints));
		if (!st->values || !st->lengths || !st->formats || !st->types || !st->ints)
			goto oom;
	}
	return st;
oom:
	gw_seterr(err, "out of memory");
	db_finalize(st);
	return NULL;
}

static void pg_clear(struct db_stmt *st)
{
	PQclear(st->res);
	st->res = NULL;
	st->row = st->nrows = 0;
	if (st->blob)
		PQfreemem(st->blob);
	st->blob = NULL;
}

void db_finalize(struct db_stmt *st)
{
	if (!st)
		return;
	sqlite3_finalize(st->lite);
	pg_clear(st);
	free(st->sql);
	free(st->values);
	free(st->lengths);
	free(st->formats);
	free(st->types);
	free(st->ints);
	free(st);
}

void db_reset(struct db_stmt *st)
{
	if (st->lite) {
		sqlite3_reset(st->lite);
		sqlite3_clear_bindings(st->lite);
		return;
	}
	pg_clear(st);
	for (int i = 0; i < st->nparams; i++) {
		st->values[i] = NULL;
		st->lengths[i] = st->formats[i] = 0;
		st->types[i] = 0;
	}
}

void db_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
	if (st->lite) {
		sqlite3_bind_int64(st->lite, idx, v);
	} else if (idx >= 1 && idx <= st->nparams) {
		snprintf(st->ints[idx - 1], sizeof(st->ints[0]), "%" PRId64, v);
		st->values[idx - 1] = st->ints[idx - 1];
		st->types[idx - 1] = OID_INT8;
	}
}

void db_bind_text(struct db_stmt *st, int idx, const char *v)
{
	if (st->lite) {
		if (v)
			sqlite3_bind_text(st->lite, idx, v, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st->lite, idx);
	} else if (idx >= 1 && idx <= st->nparams) {
		st->values[idx - 1] = v;
	}
}

void db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t n)
{
	if (st->lite) {
		sqlite3_bind_blob(st->lite, idx, p, (int)n, SQLITE_STATIC);
	} else if (idx >= 1 && idx <= st->nparams) {
		st->values[idx - 1] = p;
		st->lengths[idx - 1] = (int)n;
		st->formats[idx - 1] = 1;
		st->types[idx - 1] = OID_BYTEA;
	}
}

/* Runs the statement: prepared once per session when it has a slot. */
static PGresult *pg_run(struct db_stmt *st)
{
	struct db_conn *c = st->c;
	char name[16];

	if (st->slot < 0)
		return PQexecParams(c->pg, st->sql, st->nparams, st->types, st->values, st->lengths, st->formats, 0);
	snprintf(name, sizeof(name), "s%d", st->slot);
	if (!c->prepared[st->slot]) {
		/* The types of this first run's parameters: integers and bytes
		 * are declared, the rest inferred by the server. */
		PGresult *res = PQprepare(c->pg, name, st->sql, st->nparams, st->types);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		c->prepared[st->slot] = 1;
	}
	return PQexecPrepared(c->pg, name, st->nparams, st->values, st->lengths, st->formats, 0);
}

int db_step(struct db_stmt *st)
{
	struct db_conn *c = st->c;
	bool idle;

	if (st->lite) {
		int rc = sqlite3_step(st->lite);

		c->lite_rc = rc;
		return rc == SQLITE_ROW ? DB_ROW : rc == SQLITE_DONE ? DB_DONE : DB_ERROR;
	}
	if (st->res) {
		if (st->blob)
			PQfreemem(st->blob);
		st->blob = NULL;
		return ++st->row < st->nrows ? DB_ROW : DB_DONE;
	}
	idle = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
	st->res = pg_run(st);
	/* A session lost while idle (a server restart, a proxy's idle
	 * timeout) is opened again for a statement that writes nothing by
	 * itself: a read, or the start of a transaction. */
	if (idle && PQstatus(c->pg) != CONNECTION_OK && (c->reader || !strncmp(st->sql, "BEGIN", 5)) &&
	    db_reconnect(c, NULL) == GW_OK) {
		PQclear(st->res);
		st->res = pg_run(st);
	}
	switch (PQresultStatus(st->res)) {
	case PGRES_TUPLES_OK:
		st->nrows = PQntuples(st->res);
		c->changes = strtol(PQcmdTuples(st->res), NULL, 10);
		st->row = 0;
		return st->nrows > 0 ? DB_ROW : DB_DONE;
	case PGRES_COMMAND_OK:
		c->changes = strtol(PQcmdTuples(st->res), NULL, 10);
		return DB_DONE;
	default:
		pg_fail(c, st->res);
		pg_clear(st);
		/* An empty result, so that a further step says DONE. */
		st->res = PQmakeEmptyPGresult(c->pg, PGRES_TUPLES_OK);
		return DB_ERROR;
	}
}

int64_t db_col_int64(struct db_stmt *st, int col)
{
	const char *t;
	char *end;
	int64_t v;

	if (st->lite)
		return sqlite3_column_int64(st->lite, col);
	if (!(t = db_col_text(st, col)))
		return 0;
	if (*t == 't' || *t == 'f') /* a boolean */
		return *t == 't';
	v = strtoll(t, &end, 10);
	return *end == '.' || *end == 'e' ? (int64_t)strtod(t, NULL) : v;
}

double db_col_double(struct db_stmt *st, int col)
{
	const char *t;

	if (st->lite)
		return sqlite3_column_double(st->lite, col);
	return (t = db_col_text(st, col)) ? strtod(t, NULL) : 0.0;
}

const char *db_col_text(struct db_stmt *st, int col)
{
	if (st->lite)
		return (const char *)sqlite3_column_text(st->lite, col);
	if (!st->res || st->row >= st->nrows || col >= PQnfields(st->res) || PQgetisnull(st->res, st->row, col))
		return NULL;
	return PQgetvalue(st->res, st->row, col);
}

const void *db_col_blob(struct db_stmt *st, int col, size_t *n)
{
	const char *t;

	*n = 0;
	if (st->lite) {
		const void *p = sqlite3_column_blob(st->lite, col);

		*n = (size_t)sqlite3_column_bytes(st->lite, col);
		return p;
	}
	if (!(t = db_col_text(st, col)))
		return NULL;
	if (st->blob)
		PQfreemem(st->blob);
	st->blob = PQunescapeBytea((const unsigned char *)t, n);
	return st->blob;
}

long db_changes(struct db_conn *c)
{
	return c->driver == DB_SQLITE ? (long)sqlite3_changes(c->lite) : c->changes;
}

int64_t db_last_insert_id(struct db_conn *c)
{
	return c->driver == DB_SQLITE ? (int64_t)sqlite3_last_insert_rowid(c->lite) : 0;
}

enum gw_err db_error(struct db_conn *c, char *err)
{
	const char *s = c->sqlstate;

	if (c->driver == DB_SQLITE)
		return lite_err(c, c->lite_rc, err);
	gw_seterr(err, "%s", c->pg_msg);
	if (PQstatus(c->pg) != CONNECTION_OK)
		return GW_EIO;
	if (!strncmp(s, "23", 2))
		return GW_ECONFLICT;
	if (!strcmp(s, "40001") || !strcmp(s, "40P01") || !strcmp(s, "55P03"))
		return GW_EBUSY;
	if (!strcmp(s, "53100"))
		return GW_EFULL;
	return !strncmp(s, "53", 2) ? GW_EBUSY : GW_EIO;
}

bool db_txn_failed(struct db_conn *c)
{
	if (c->driver != DB_POSTGRES)
		return false;
	switch (PQtransactionStatus(c->pg)) {
	case PQTRANS_INERROR:
	case PQTRANS_UNKNOWN:
		return true;
	default:
		return false;
	}
}

bool db_transient(struct db_conn *c)
{
	return c->driver == DB_POSTGRES && (PQstatus(c->pg) != CONNECTION_OK || !strcmp(c->sqlstate, "40001") ||
					     !strcmp(c->sqlstate, "40P01"));
}

enum gw_err db_exec(struct db_conn *c, const char *sql, char *err)
{
	PGresult *res;
	enum gw_err rc = GW_OK;

	if (c->driver == DB_SQLITE) {
		char *msg = NULL;
		int src = sqlite3_exec(c->lite, sql, NULL, NULL, &msg);

		c->lite_rc = src;
		if (src != SQLITE_OK) {
			rc = lite_err(c, src, err);
			if (msg)
				gw_seterr(err, "sqlite: %s", msg);
		}
		sqlite3_free(msg);
		return rc;
	}
	res = PQexec(c->pg, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		pg_fail(c, res);
		rc = db_error(c, err);
	}
	PQclear(res);
	return rc;
}

enum gw_err db_listen(struct db_conn *c, const char *channel, char *err)
{
	char sql[96];

	if (c->driver != DB_POSTGRES)
		return GW_OK;
	snprintf(c->channel, sizeof(c->channel), "%s", channel);
	snprintf(sql, sizeof(sql), "LISTEN %s", c->channel);
	return db_exec(c, sql, err);
}

bool db_notified(struct db_conn *c)
{
	bool others = false;
	PGnotify *n;

	if (c->driver == DB_SQLITE) {
		sqlite3_stmt *st = NULL;
		int64_t v = c->data_version;

		if (sqlite3_prepare_v2(c->lite, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		others = c->data_version && v != c->data_version;
		c->data_version = v;
		return others;
	}
	PQconsumeInput(c->pg);
	while ((n = PQnotifies(c->pg))) {
		if (n->be_pid != c->backend_pid)
			others = true;
		PQfreemem(n);
	}
	return others;
}
