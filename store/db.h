/* The two SQL engines behind one statement interface, shaped like SQLite's
 * (prepare, bind, step row by row, read columns): SQLite for one machine,
 * PostgreSQL (libpq) for replicas sharing one database. Internal to store/.
 *
 * SQL is written once with ?N (or ?) parameters; on PostgreSQL they become
 * $N. Where the dialects differ the caller picks the text by db_driver(). */
#ifndef GW_STORE_DB_H
#define GW_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum db_driver { DB_SQLITE, DB_POSTGRES };

/* db_step's results. */
enum { DB_ERROR = -1, DB_DONE = 0, DB_ROW = 1 };

struct db_conn;
struct db_stmt;

/* target: a file path (SQLite) or a libpq connection string. A reader
 * connection refuses writes. */
enum gw_err db_connect(enum db_driver driver, const char *target, bool reader, bool sync_full,
		       struct db_conn **out, char *err);
void db_close(struct db_conn *c);
/* PostgreSQL: opens the session again if it was lost (SQLite: no-op).
 * Only where no transaction is open: a lost one is not resumed. db_step
 * does it by itself for a read, or a BEGIN, that finds the session lost. */
enum gw_err db_reconnect(struct db_conn *c, char *err);
enum db_driver db_driver(const struct db_conn *c);
/* The engine's version: SQLite's library, PostgreSQL's server. */
void db_version(const struct db_conn *c, char *out, size_t len);

/* slot >= 0 (below DB_SLOTS): the statement is kept for reuse, as SQLite's
 * persistent statement or PostgreSQL's server-side prepared statement of
 * that slot; -1: a one-off. */
#define DB_SLOTS 128
struct db_stmt *db_prepare(struct db_conn *c, const char *sql, int slot, char *err);
void db_finalize(struct db_stmt *st);
/* Ready for new bindings and a new run. */
void db_reset(struct db_stmt *st);

/* Values are borrowed until the statement is stepped. Text NULL binds NULL. */
void db_bind_int64(struct db_stmt *st, int idx, int64_t v);
void db_bind_text(struct db_stmt *st, int idx, const char *v);
void db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t n);

int db_step(struct db_stmt *st);
/* The columns of the current row; text is NULL for SQL NULL and lives
 * until the next step or reset. */
int64_t db_col_int64(struct db_stmt *st, int col);
double db_col_double(struct db_stmt *st, int col);
const char *db_col_text(struct db_stmt *st, int col);
const void *db_col_blob(struct db_stmt *st, int col, size_t *n);

/* Rows changed by the connection's last statement. */
long db_changes(struct db_conn *c);
/* The rowid of the row the last INSERT on c added (SQLite; PostgreSQL's
 * inserts say it with RETURNING). */
int64_t db_last_insert_id(struct db_conn *c);
/* The connection's last failure as a gw_err, its message in err:
 * ECONFLICT for a constraint, EBUSY for a lock or a serialization
 * failure, EFULL for a full disk, EIO otherwise (a lost connection too). */
enum gw_err db_error(struct db_conn *c, char *err);

/* PostgreSQL: whether the open transaction failed (a statement's error
 * aborted it, or the session was lost). SQLite: false. */
bool db_txn_failed(struct db_conn *c);

/* Whether the last failure will likely pass on a new try: a lost session,
 * a deadlock or a serialization failure (PostgreSQL). */
bool db_transient(struct db_conn *c);

/* One or more statements without parameters or rows. */
enum gw_err db_exec(struct db_conn *c, const char *sql, char *err);

/* SQLite: calls fn for each row the connection writes to `table`. */
void db_on_row_change(struct db_conn *c, const char *table, void (*fn)(void *arg, int64_t rowid), void *arg);
/* PostgreSQL: listens on channel; db_notified reports whether another
 * session notified it since the last call (reading what has arrived, no
 * wait). SQLite: whether another connection committed since the last call. */
enum gw_err db_listen(struct db_conn *c, const char *channel, char *err);
bool db_notified(struct db_conn *c);

#endif
