/* Whether a SQL script is DDL only (catalogue changes a shared server can
 * run without a cluster of its own) or has DML in it. A small lexer of
 * Spark SQL's surface: quoted strings and identifiers, line and nested
 * block comments, statements split at top-level semicolons. */
#include "router/router.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The first words that only change the catalogue or the session. */
static const char *const ddl_verbs[] = {
	"ALTER", "ANALYZE", "COMMENT", "CREATE", "DESC", "DESCRIBE", "DROP", "MSCK",
	"REFRESH", "REPLACE", "RESET", "SET", "SHOW", "TRUNCATE", "UNCACHE", "USE",
};

/* After CREATE|REPLACE ... AS at depth 0, the words that start a query:
 * CREATE TABLE ... AS SELECT writes data (a CTAS is DML). */
static const char *const query_starts[] = {"FROM", "SELECT", "TABLE", "VALUES", "WITH"};

#define WORD_MAX 16

/* One statement as the classifier sees it. */
struct statement {
	char verb[WORD_MAX];   /* its first word, upper-cased */
	bool creates_table;    /* CREATE|REPLACE [...] TABLE */
	bool as_query;         /* a top-level AS followed by a query */
	bool after_as;         /* the last top-level word was AS */
	unsigned words;        /* top-level words seen */
	int depth;             /* parentheses */
};

struct lexer {
	const char *start, *p, *end;
	char error[128];
};

/* The script so far: its statements, the DDL verbs met (bits of
 * ddl_verbs), and where the reason goes. */
struct tally {
	unsigned statements, seen;
	char *reason;
	size_t reason_len;
};

/* Where word is in list, or -1. */
static int index_in(const char *word, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(word, list[i]))
			return (int)i;
	return -1;
}

#define INDEX_IN(word, list) index_in((word), (list), sizeof(list) / sizeof((list)[0]))

/* Past a quoted run closed by q; a doubled q or a backslash escapes in
 * strings, only a doubled one in `identifiers`. */
static bool skip_quoted(struct lexer *lx, char q)
{
	const char *start = lx->p++;

	while (lx->p < lx->end) {
		char c = *lx->p++;

		if (c == '\\' && q != '`' && lx->p < lx->end) {
			lx->p++;
		} else if (c == q) {
			if (lx->p < lx->end && *lx->p == q) {
				lx->p++;
				continue;
			}
			return true;
		}
	}
	snprintf(lx->error, sizeof(lx->error), "unterminated %s starting at offset %td",
		 q == '`' ? "quoted identifier" : "string", start - lx->start);
	return false;
}

/* Past a block comment; Spark's nest. */
static bool skip_block_comment(struct lexer *lx)
{
	const char *start = lx->p;
	unsigned depth = 0;

	while (lx->p + 1 < lx->end) {
		if (lx->p[0] == '/' && lx->p[1] == '*') {
			depth++;
			lx->p += 2;
		} else if (lx->p[0] == '*' && lx->p[1] == '/') {
			lx->p += 2;
			if (--depth == 0)
				return true;
		} else {
			lx->p++;
		}
	}
	snprintf(lx->error, sizeof(lx->error), "unterminated comment starting at offset %td", start - lx->start);
	return false;
}

static void take_word(struct statement *st, const char *w, size_t len)
{
	char word[WORD_MAX];
	size_t n = len < WORD_MAX - 1 ? len : WORD_MAX - 1;

	for (size_t i = 0; i < n; i++)
		word[i] = (char)toupper((unsigned char)w[i]);
	word[n] = '\0';
	if (len >= WORD_MAX)
		word[0] = '\0'; /* no keyword is that long */
	if (st->depth > 0)
		return;
	if (st->words++ == 0)
		snprintf(st->verb, sizeof(st->verb), "%s", word);
	else if (!strcmp(word, "TABLE") && !st->after_as &&
		 (!strcmp(st->verb, "CREATE") || !strcmp(st->verb, "REPLACE")))
		st->creates_table = true;
	if (st->after_as && INDEX_IN(word, query_starts) >= 0)
		st->as_query = true;
	st->after_as = !strcmp(word, "AS");
}

/* A statement ended: false (and the reason) when it is DML, else its verb
 * joins those seen. */
static bool end_statement(const struct statement *st, struct tally *t)
{
	int verb = INDEX_IN(st->verb, ddl_verbs);

	if (!st->words)
		return true; /* an empty statement: ";;" */
	t->statements++;
	if (st->creates_table && st->as_query) {
		snprintf(t->reason, t->reason_len, "statement %u is %s TABLE ... AS a query, which writes data",
			 t->statements, st->verb);
		return false;
	}
	if (verb < 0) {
		snprintf(t->reason, t->reason_len, "statement %u is %s, not DDL", t->statements,
			 st->verb[0] ? st->verb : "a query");
		return false;
	}
	t->seen |= 1u << verb;
	return true;
}

/* "CREATE, SET": the verbs seen, in the table's order. */
static void name_verbs(unsigned seen, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(ddl_verbs) / sizeof(ddl_verbs[0]) && used < len; i++)
		if (seen & (1u << i))
			used += (size_t)snprintf(out + used, len - used, "%s%s", used ? ", " : "", ddl_verbs[i]);
}

bool router_is_sql(const json_t *spec)
{
	const char *type = json_string_value(json_object_get(spec, "type"));

	return type && !strcmp(type, "SQL");
}

enum router_sql_kind router_sql_classify(const char *sql, size_t len, char *reason, size_t reason_len)
{
	struct lexer lx = {.start = sql, .p = sql, .end = sql + len};
	struct tally t = {.reason = reason, .reason_len = reason_len};
	struct statement st = {0};
	char verbs[160];

	while (lx.p < lx.end) {
		char c = *lx.p;

		if (c == '\'' || c == '"' || c == '`') {
			if (!skip_quoted(&lx, c))
				goto invalid;
			/* A statement that opens with a literal is no DDL: it counts
			 * as one with an empty verb. */
			st.words += st.depth == 0 && st.words == 0;
			st.after_as = false;
		} else if (c == '-' && lx.p + 1 < lx.end && lx.p[1] == '-') {
			while (lx.p < lx.end && *lx.p != '\n')
				lx.p++;
		} else if (c == '/' && lx.p + 1 < lx.end && lx.p[1] == '*') {
			if (!skip_block_comment(&lx))
				goto invalid;
		} else if (isalpha((unsigned char)c) || c == '_') {
			const char *w = lx.p;

			while (lx.p < lx.end && (isalnum((unsigned char)*lx.p) || *lx.p == '_'))
				lx.p++;
			take_word(&st, w, (size_t)(lx.p - w));
		} else if (c == ';' && st.depth == 0) {
			if (!end_statement(&st, &t))
				return ROUTER_SQL_DML;
			st = (struct statement){0};
			lx.p++;
		} else {
			if (c == '(') {
				if (st.depth == 0 && st.after_as)
					st.as_query = true; /* AS (SELECT ...) */
				if (st.depth == 0 && st.words == 0)
					st.words = 1; /* "(SELECT 1)": a query, verb left empty */
				st.depth++;
			} else if (c == ')' && st.depth > 0) {
				st.depth--;
			}
			if (!isspace((unsigned char)c))
				st.after_as = false;
			lx.p++;
		}
	}
	if (!end_statement(&st, &t))
		return ROUTER_SQL_DML;
	if (!t.statements) {
		snprintf(reason, reason_len, "no statements");
		return ROUTER_SQL_EMPTY;
	}
	name_verbs(t.seen, verbs, sizeof(verbs));
	snprintf(reason, reason_len, "all %u statement%s DDL (%s)", t.statements, t.statements == 1 ? " is" : "s are",
		 verbs);
	return ROUTER_SQL_DDL;
invalid:
	snprintf(reason, reason_len, "%s", lx.error);
	return ROUTER_SQL_INVALID;
}
