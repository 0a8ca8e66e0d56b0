/*-------------------------------------------------------------------------
 *
 * pseudonymize.c
 *	  Keyed pseudonyms (HMAC-SHA256 under a data key, hex) and the plain,
 *	  unkeyed camperso.sha256().
 *
 * A pseudonym is deterministic under one key version, so the same user id
 * gives the same pseudonym in every table and every session and joins keep
 * working; without the key it cannot be recomputed from a guessed id. A
 * plain SHA-256 of a low-entropy id (a number, an email) is reversed by
 * hashing candidates, which is why camperso.sha256() exists only for
 * checksums and compatibility and is documented as weak for identifiers.
 *
 * Speed: HMAC hashes the key XOR ipad and XOR opad as a first block of the
 * inner and outer hashes. Those two states depend on the key only, so they
 * are computed once per key version and kept with the cached key (keys.c);
 * each call copies them and hashes the value and the inner digest, which is
 * two SHA-256 compressions for a short id instead of four.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "core/errors.h"
#include "security/security.h"

PG_FUNCTION_INFO_V1(camperso_pseudonymize);
PG_FUNCTION_INFO_V1(camperso_pseudonymize_version);
PG_FUNCTION_INFO_V1(camperso_pseudonyms);
PG_FUNCTION_INFO_V1(camperso_sha256);

#define SHA256_BLOCK	64
#define SHA256_LEN		32

/* The inner and outer hash states after the key block, per key version. */
typedef struct MacState
{
	EVP_MD_CTX *inner;
	EVP_MD_CTX *outer;
} MacState;

static EVP_MD *sha256_md = NULL;
static EVP_MD_CTX *work_ctx = NULL;

/* The SHA-256 implementation, fetched once per backend. */
static const EVP_MD *
Sha256(void)
{
	if (sha256_md == NULL)
	{
		sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (sha256_md == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_CAMPERSO_KEY),
					 errmsg("OpenSSL has no SHA-256 implementation")));
	}
	return sha256_md;
}

static void
OpenSslFailed(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_CAMPERSO_INTERNAL),
			 errmsg("OpenSSL failed to %s", what)));
}

/* Frees a MacState made by MacStateMake (called by keys.c on reload). */
void
SecurityMacStateFree(void *state)
{
	MacState   *ms = (MacState *) state;

	/* EVP_MD_CTX_free cleanses the hash state before freeing it. */
	EVP_MD_CTX_free(ms->inner);
	EVP_MD_CTX_free(ms->outer);
	pfree(ms);
}

/* Hashes the key block (key XOR pad) into a new context. */
static EVP_MD_CTX *
MacPadded(const uint8 *key, uint8 pad)
{
	uint8		block[SHA256_BLOCK];
	EVP_MD_CTX *ctx;
	int			i;

	memset(block, 0, sizeof(block));
	memcpy(block, key, SECURITY_KEY_LEN);
	for (i = 0; i < SHA256_BLOCK; i++)
		block[i] ^= pad;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL ||
		EVP_DigestInit_ex(ctx, Sha256(), NULL) != 1 ||
		EVP_DigestUpdate(ctx, block, sizeof(block)) != 1)
	{
		explicit_bzero(block, sizeof(block));
		EVP_MD_CTX_free(ctx);
		OpenSslFailed("start an HMAC");
	}
	explicit_bzero(block, sizeof(block));
	return ctx;
}

/* The precomputed HMAC state of a key, made on first use. */
static MacState *
MacStateOf(SecurityKey *key)
{
	if (key->mac_state == NULL)
	{
		MacState   *ms = MemoryContextAllocZero(TopMemoryContext, sizeof(MacState));

		ms->inner = MacPadded(key->mac_key, 0x36);
		ms->outer = MacPadded(key->mac_key, 0x5c);
		key->mac_state = ms;
	}
	return (MacState *) key->mac_state;
}

static void
HexInto(const uint8 *in, int len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	int			i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
}

/*
 * Writes the pseudonym of value under key into out: SECURITY_PSEUDONYM_LEN
 * hex digits, not NUL-terminated.
 */
void
SecurityPseudonymize(SecurityKey *key, const char *value, int len, char *out)
{
	MacState   *ms = MacStateOf(key);
	uint8		inner[SHA256_LEN];
	uint8		mac[SHA256_LEN];
	unsigned int dlen;

	if (work_ctx == NULL)
	{
		work_ctx = EVP_MD_CTX_new();
		if (work_ctx == NULL)
			OpenSslFailed("allocate a digest context");
	}
	if (EVP_MD_CTX_copy_ex(work_ctx, ms->inner) != 1 ||
		EVP_DigestUpdate(work_ctx, value, len) != 1 ||
		EVP_DigestFinal_ex(work_ctx, inner, &dlen) != 1 ||
		EVP_MD_CTX_copy_ex(work_ctx, ms->outer) != 1 ||
		EVP_DigestUpdate(work_ctx, inner, SHA256_LEN) != 1 ||
		EVP_DigestFinal_ex(work_ctx, mac, &dlen) != 1)
		OpenSslFailed("compute an HMAC");
	HexInto(mac, SHA256_LEN, out);
}

/* A text datum holding the pseudonym of t under key. */
static text *
PseudonymText(SecurityKey *key, text *t)
{
	text	   *result = palloc(VARHDRSZ + SECURITY_PSEUDONYM_LEN);

	SET_VARSIZE(result, VARHDRSZ + SECURITY_PSEUDONYM_LEN);
	SecurityPseudonymize(key, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), VARDATA(result));
	return result;
}

/*
 * camperso.pseudonymize(value text) RETURNS text: HMAC-SHA256 of value
 * under the current data key, 64 hex digits.
 */
Datum
camperso_pseudonymize(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(PseudonymText(SecurityCurrentKey(), value));
}

/*
 * camperso.pseudonymize(value text, key_version integer) RETURNS text: the
 * pseudonym under an older (or the current) key version.
 */
Datum
camperso_pseudonymize_version(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	int32		version = PG_GETARG_INT32(1);

	PG_RETURN_TEXT_P(PseudonymText(SecurityKeyVersion(version, false), value));
}

/*
 * camperso.pseudonyms(value text) RETURNS text[]: the pseudonym of value
 * under every key version, newest first; matches rows pseudonymised before
 * and after rotations (joins across a rotation, erasure).
 */
Datum
camperso_pseudonyms(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	SecurityKey **keys;
	int			nkeys = SecurityKeyVersions(&keys);
	Datum	   *elems = palloc(sizeof(Datum) * nkeys);
	int			i;

	for (i = 0; i < nkeys; i++)
		elems[i] = PointerGetDatum(PseudonymText(keys[i], value));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, nkeys, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * camperso.sha256(value text) RETURNS text: plain SHA-256, hex. Unkeyed, so
 * anyone can hash candidate ids and match them: weak for low-entropy ids.
 */
Datum
camperso_sha256(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	uint8		digest[SHA256_LEN];
	unsigned int dlen;
	text	   *result = palloc(VARHDRSZ + 2 * SHA256_LEN);

	if (EVP_Digest(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), digest, &dlen,
				   Sha256(), NULL) != 1)
		OpenSslFailed("compute a SHA-256 digest");
	SET_VARSIZE(result, VARHDRSZ + 2 * SHA256_LEN);
	HexInto(digest, SHA256_LEN, VARDATA(result));
	PG_RETURN_TEXT_P(result);
}
