/* Tokens, their cache, roles and per-token rate limits. */
#include "gateway/auth/auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"
#include "common/timeutil.h"

#define TOKEN_PREFIX "sgw_"
#define ID_CHARS 12
#define SECRET_BYTES 32
#define SECRET_CHARS 43 /* base64url of 32 bytes, unpadded */
/* A token revoked or changed in the database by another process (the
 * command line) is seen within this long; through the API, at once. */
#define CACHE_MS 2000

static const char *const role_names[] = {"viewer", "submitter", "operator", "admin"};

const char *auth_role_name(enum auth_role role)
{
	return (unsigned)role < 4 ? role_names[role] : "unknown";
}

int auth_role_parse(const char *name)
{
	for (int i = 0; name && i < 4; i++)
		if (!strcmp(name, role_names[i]))
			return i;
	return -1;
}

void auth_principal_release(struct auth_principal *p)
{
	json_decref(p->teams);
	memset(p, 0, sizeof(*p));
}

bool auth_sees_team(const struct auth_principal *p, const char *team)
{
	size_t i;
	json_t *t;

	if (p->role >= AUTH_OPERATOR)
		return true;
	json_array_foreach(p->teams, i, t)
		if (team && !strcmp(json_string_value(t), team))
			return true;
	return false;
}

struct auth {
	struct store *store;
	double rate, burst;
	pthread_mutex_t lock; /* guards both maps */
	json_t *cache;        /* id -> {hash, owner, teams, role, expires, revoked, at} */
	json_t *buckets;      /* id -> [tokens, at_ms] */
};

struct auth *auth_new(struct store *store, double rate, double burst)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->store = store;
	a->rate = rate;
	a->burst = burst < 1 ? 1 : burst;
	a->cache = json_object();
	a->buckets = json_object();
	pthread_mutex_init(&a->lock, NULL);
	if (!a->cache || !a->buckets) {
		auth_free(a);
		return NULL;
	}
	return a;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	json_decref(a->cache);
	json_decref(a->buckets);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

static bool secret_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

/* Splits "sgw_<id>_<secret>"; false if it is not that shape. */
static bool split_token(const char *token, char *id, const char **secret)
{
	size_t plen = strlen(TOKEN_PREFIX);

	if (strlen(token) != plen + ID_CHARS + 1 + SECRET_CHARS || strncmp(token, TOKEN_PREFIX, plen) ||
	    token[plen + ID_CHARS] != '_')
		return false;
	for (size_t i = 0; i < ID_CHARS; i++)
		if (!id_char(token[plen + i]))
			return false;
	for (size_t i = 0; i < SECRET_CHARS; i++)
		if (!secret_char(token[plen + ID_CHARS + 1 + i]))
			return false;
	memcpy(id, token + plen, ID_CHARS);
	id[ID_CHARS] = '\0';
	*secret = token + plen + ID_CHARS + 1;
	return true;
}

static void hex(const unsigned char digest[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = digits[digest[i] >> 4];
		out[2 * i + 1] = digits[digest[i] & 15];
	}
	out[64] = '\0';
}

/* The token's entry, from the cache or the store; NULL if unknown. */
static json_t *lookup(struct auth *a, const char *id, char *why)
{
	int64_t now = gw_now_ms();
	struct store_token t;
	char err[GW_ERRLEN], hash[65];
	json_t *e, *teams;

	pthread_mutex_lock(&a->lock);
	e = json_incref(json_object_get(a->cache, id));
	pthread_mutex_unlock(&a->lock);
	if (e && now - json_integer_value(json_object_get(e, "at")) < CACHE_MS)
		return e;
	json_decref(e);
	if (store_token_get(a->store, id, &t, err)) {
		gw_seterr(why, "unknown or unreadable token");
		return NULL;
	}
	hex(t.secret_sha256, hash);
	teams = json_loads(t.teams_json, 0, NULL);
	e = json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:I}", "hash", hash, "owner", t.owner, "teams",
		      json_is_array(teams) ? teams : json_array(), "role", t.role,
		      "expires", (json_int_t)t.expires_ms, "revoked", (json_int_t)t.revoked_ms,
		      "at", (json_int_t)now);
	if (!json_is_array(teams))
		json_decref(teams);
	store_token_release(&t);
	if (e) {
		pthread_mutex_lock(&a->lock);
		json_object_set(a->cache, id, e);
		pthread_mutex_unlock(&a->lock);
	}
	return e;
}

enum gw_err auth_check(struct auth *a, const char *authorization, struct auth_principal *out,
		       char *why)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	const char *secret, *stored;
	char id[ID_CHARS + 1], given[65];
	json_t *e;
	int64_t now = gw_now_ms();
	int role;

	memset(out, 0, sizeof(*out));
	if (!authorization) {
		gw_seterr(why, "this endpoint needs a token: Authorization: Bearer <token>");
		return GW_EINVAL;
	}
	if (strncmp(authorization, "Bearer ", 7) || !split_token(authorization + 7, id, &secret)) {
		gw_seterr(why, "the Authorization header is not a Bearer token of this gateway");
		return GW_EINVAL;
	}
	if (!(e = lookup(a, id, why)))
		return GW_EINVAL;
	SHA256((const unsigned char *)secret, SECRET_CHARS, digest);
	hex(digest, given);
	stored = json_string_value(json_object_get(e, "hash"));
	if (!stored || strlen(stored) != 64 || CRYPTO_memcmp(stored, given, 64) != 0) {
		gw_seterr(why, "unknown or unreadable token");
		json_decref(e);
		return GW_EINVAL;
	}
	if (json_integer_value(json_object_get(e, "revoked"))) {
		gw_seterr(why, "token %s is revoked", id);
		json_decref(e);
		return GW_EINVAL;
	}
	if (json_integer_value(json_object_get(e, "expires")) &&
	    now >= json_integer_value(json_object_get(e, "expires"))) {
		gw_seterr(why, "token %s has expired", id);
		json_decref(e);
		return GW_EINVAL;
	}
	role = auth_role_parse(json_string_value(json_object_get(e, "role")));
	snprintf(out->token_id, sizeof(out->token_id), "%s", id);
	snprintf(out->owner, sizeof(out->owner), "%s", json_string_value(json_object_get(e, "owner")));
	out->role = role < 0 ? AUTH_VIEWER : (enum auth_role)role;
	out->teams = json_incref(json_object_get(e, "teams"));
	json_decref(e);
	return GW_OK;
}

bool auth_rate_take(struct auth *a, const char *token_id, unsigned *retry_after_s)
{
	int64_t now = gw_now_ms();
	json_t *b;
	double tokens;
	bool ok;

	if (a->rate <= 0)
		return true;
	pthread_mutex_lock(&a->lock);
	b = json_object_get(a->buckets, token_id);
	tokens = b ? json_real_value(json_array_get(b, 0)) +
			     (double)(now - json_integer_value(json_array_get(b, 1))) / 1000.0 * a->rate
		   : a->burst;
	if (tokens > a->burst)
		tokens = a->burst;
	ok = tokens >= 1.0;
	if (ok)
		tokens -= 1.0;
	else
		*retry_after_s = (unsigned)((1.0 - tokens) / a->rate) + 1;
	json_object_set_new(a->buckets, token_id, json_pack("[f, I]", tokens, (json_int_t)now));
	pthread_mutex_unlock(&a->lock);
	return ok;
}

void auth_forget(struct auth *a, const char *token_id)
{
	pthread_mutex_lock(&a->lock);
	json_object_del(a->cache, token_id);
	pthread_mutex_unlock(&a->lock);
}

/* base32 (RFC 4648 alphabet, lower case) of random bytes. */
static bool random_id(char *out)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char rnd[ID_CHARS];

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return false;
	for (size_t i = 0; i < ID_CHARS; i++)
		out[i] = alphabet[rnd[i] & 31];
	out[ID_CHARS] = '\0';
	return true;
}

static bool random_secret(char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char rnd[SECRET_BYTES + 1] = {0};
	size_t n = 0;

	if (RAND_bytes(rnd, SECRET_BYTES) != 1)
		return false;
	/* base64url: 6 bits a character over the 256 bits (the last has 4). */
	for (size_t bit = 0; bit < SECRET_BYTES * 8; bit += 6) {
		size_t byte = bit / 8, shift = bit % 8;
		unsigned v = ((unsigned)rnd[byte] << 8 | rnd[byte + 1]) >> (10 - shift);

		out[n++] = alphabet[v & 63];
	}
	out[n] = '\0';
	return n == SECRET_CHARS;
}

enum gw_err auth_token_create(struct store *s, const char *owner, const json_t *teams,
			      enum auth_role role, int64_t expires_ms, char *token, char *id, char *err)
{
	struct store_op op = {.kind = STORE_OP_TOKEN_CREATE};
	char secret[SECRET_CHARS + 1], why[GW_ERRLEN], id_text[ID_CHARS + 1];
	size_t i;
	json_t *t;
	enum gw_err rc;

	if (!json_is_array(teams)) {
		gw_seterr(err, "teams must be a list of team names");
		return GW_EINVAL;
	}
	json_array_foreach(teams, i, t)
		if (!json_is_string(t) || !*json_string_value(t) ||
		    !gw_label_value_valid(json_string_value(t), why)) {
			gw_seterr(err, "team names are label values: %s", json_is_string(t) ? why : "not a string");
			return GW_EINVAL;
		}
	if (!owner || !*owner || strlen(owner) > 127) {
		gw_seterr(err, "the owner must be 1 to 127 characters");
		return GW_EINVAL;
	}
	if (!random_id(id_text) || !random_secret(secret)) {
		gw_seterr(err, "the random number generator failed");
		return GW_EIO;
	}
	snprintf(op.token.id, sizeof(op.token.id), "%s", id_text);
	SHA256((const unsigned char *)secret, SECRET_CHARS, op.token.secret_sha256);
	op.token.owner = strdup(owner);
	op.token.teams_json = json_dumps(teams, JSON_COMPACT);
	op.token.role = strdup(auth_role_name(role));
	op.token.created_ms = gw_now_ms();
	op.token.expires_ms = expires_ms;
	rc = op.token.owner && op.token.teams_json && op.token.role ? store_execute(s, &op) : GW_ENOMEM;
	store_token_release(&op.token);
	if (rc) {
		gw_seterr(err, "%s", op.err);
		return rc;
	}
	snprintf(token, AUTH_TOKEN_LEN, TOKEN_PREFIX "%s_%s", id_text, secret);
	snprintf(id, 32, "%s", id_text);
	OPENSSL_cleanse(secret, sizeof(secret));
	return GW_OK;
}

int64_t auth_duration_ms(const char *text)
{
	char *end;
	long long n;

	if (!text || !*text)
		return -1;
	n = strtoll(text, &end, 10);
	if (n <= 0 || end == text || end[0] == '\0' || end[1] != '\0' || n > 36500LL * 86400)
		return -1;
	switch (*end) {
	case 'd': return n * 86400000LL;
	case 'h': return n * 3600000LL;
	case 'm': return n * 60000LL;
	case 's': return n * 1000LL;
	default: return -1;
	}
}
