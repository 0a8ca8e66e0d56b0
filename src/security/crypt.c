/*-------------------------------------------------------------------------
 *
 * crypt.c
 *	  Envelope encryption of payloads (AES-256-GCM, OpenSSL) and the GCM
 *	  seal/open primitive that keys.c also uses to wrap data keys.
 *
 * An envelope is self-describing, so a payload encrypted under an old key
 * version still decrypts after rotations:
 *
 *	  "CPE" | format (1 byte, 1) | key version (uint32, big-endian)
 *	  | nonce (12 random bytes) | ciphertext (same length as the plaintext)
 *	  | tag (16 bytes)
 *
 * The 8-byte header is authenticated as additional data, so changing the
 * version, the format or any ciphertext byte makes decryption fail with
 * SQLSTATE CP701 rather than return garbage. Nonces are random (RAND_bytes):
 * with 96-bit random nonces a key should encrypt well under 2^32 payloads,
 * so rotate the data key before that (camperso.rotate_key()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "core/errors.h"
#include "security/security.h"

PG_FUNCTION_INFO_V1(camperso_encrypt);
PG_FUNCTION_INFO_V1(camperso_decrypt);
PG_FUNCTION_INFO_V1(camperso_envelope_key_version);

/* Largest plaintext: a bytea of 1 GB less the envelope. */
#define MAX_PLAINTEXT	(MaxAllocSize - VARHDRSZ - SECURITY_ENVELOPE_OVERHEAD)

static EVP_CIPHER *aes_gcm = NULL;
static EVP_CIPHER_CTX *cipher_ctx = NULL;

static void
GcmFailed(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_CAMPERSO_INTERNAL),
			 errmsg("OpenSSL failed to %s", what)));
}

/* The AES-256-GCM implementation and a reusable context, made once. */
static EVP_CIPHER_CTX *
GcmContext(void)
{
	if (aes_gcm == NULL)
	{
		aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
		if (aes_gcm == NULL)
			GcmFailed("find AES-256-GCM");
	}
	if (cipher_ctx == NULL)
	{
		cipher_ctx = EVP_CIPHER_CTX_new();
		if (cipher_ctx == NULL)
			GcmFailed("allocate a cipher context");
	}
	if (EVP_CIPHER_CTX_reset(cipher_ctx) != 1)
		GcmFailed("reset a cipher context");
	return cipher_ctx;
}

/*
 * Encrypts len bytes of plain under key with a fresh random nonce, binding
 * aad; writes nonce | ciphertext | tag (len + 28 bytes) to out.
 */
void
SecurityGcmSeal(const uint8 *key, const uint8 *aad, int aad_len,
				const uint8 *plain, int len, uint8 *out)
{
	EVP_CIPHER_CTX *ctx = GcmContext();
	uint8	   *nonce = out;
	uint8	   *ct = out + SECURITY_NONCE_LEN;
	int			outl = 0;
	int			finl = 0;

	SecurityRandomBytes(nonce, SECURITY_NONCE_LEN);
	if (EVP_EncryptInit_ex2(ctx, aes_gcm, key, nonce, NULL) != 1 ||
		(aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &outl, aad, aad_len) != 1) ||
		(len > 0 && EVP_EncryptUpdate(ctx, ct, &outl, plain, len) != 1) ||
		EVP_EncryptFinal_ex(ctx, ct + (len > 0 ? outl : 0), &finl) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SECURITY_TAG_LEN, ct + len) != 1)
		GcmFailed("encrypt");
	EVP_CIPHER_CTX_reset(ctx);
}

/*
 * Decrypts nonce | ciphertext | tag (sealed_len bytes) under key, checking
 * aad; writes sealed_len - 28 bytes to out. Returns false when the tag does
 * not match (tampered data, other key, other aad).
 */
bool
SecurityGcmOpen(const uint8 *key, const uint8 *aad, int aad_len,
				const uint8 *sealed, int sealed_len, uint8 *out)
{
	EVP_CIPHER_CTX *ctx = GcmContext();
	const uint8 *nonce = sealed;
	const uint8 *ct = sealed + SECURITY_NONCE_LEN;
	int			len = sealed_len - SECURITY_NONCE_LEN - SECURITY_TAG_LEN;
	uint8		tag[SECURITY_TAG_LEN];
	int			outl = 0;
	int			finl = 0;
	bool		ok;

	Assert(len >= 0);
	memcpy(tag, ct + len, SECURITY_TAG_LEN);
	if (EVP_DecryptInit_ex2(ctx, aes_gcm, key, nonce, NULL) != 1 ||
		(aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &outl, aad, aad_len) != 1) ||
		(len > 0 && EVP_DecryptUpdate(ctx, out, &outl, ct, len) != 1) ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SECURITY_TAG_LEN, tag) != 1)
		GcmFailed("decrypt");
	ok = EVP_DecryptFinal_ex(ctx, out + (len > 0 ? outl : 0), &finl) == 1;
	EVP_CIPHER_CTX_reset(ctx);
	if (!ok && len > 0)
		explicit_bzero(out, len);
	return ok;
}

/* Encrypts data under the current key into a new envelope (palloc'd). */
bytea *
SecurityEncrypt(const char *data, int len)
{
	SecurityKey *key;
	bytea	   *env;
	uint8	   *p;
	uint32		version;

	if (len < 0 || (Size) len > MAX_PLAINTEXT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("payload too large to encrypt"),
				 errdetail("The payload has %d bytes; the most is %zu.", len, (Size) MAX_PLAINTEXT)));
	key = SecurityCurrentKey();
	env = palloc(VARHDRSZ + SECURITY_ENVELOPE_OVERHEAD + len);
	SET_VARSIZE(env, VARHDRSZ + SECURITY_ENVELOPE_OVERHEAD + len);
	p = (uint8 *) VARDATA(env);
	memcpy(p, SECURITY_ENVELOPE_MAGIC, 3);
	p[3] = SECURITY_ENVELOPE_FORMAT;
	version = (uint32) key->version;
	p[4] = version >> 24;
	p[5] = version >> 16;
	p[6] = version >> 8;
	p[7] = version;
	SecurityGcmSeal(key->enc_key, p, SECURITY_ENVELOPE_HEADER,
					(const uint8 *) data, len, p + SECURITY_ENVELOPE_HEADER);
	return env;
}

/*
 * Checks the shape of an envelope and returns its key version; raises
 * 22P03 when the bytes are not an envelope at all.
 */
static int32
EnvelopeVersion(const uint8 *p, int len)
{
	if (len < SECURITY_ENVELOPE_OVERHEAD || memcmp(p, SECURITY_ENVELOPE_MAGIC, 3) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid camperso envelope"),
				 errdetail("An envelope starts with \"CPE\" and is at least %d bytes long; this value has %d bytes.",
						   SECURITY_ENVELOPE_OVERHEAD, len),
				 errhint("Only values made by camperso.encrypt() or stored encrypted by camperso can be decrypted.")));
	if (p[3] != SECURITY_ENVELOPE_FORMAT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("unsupported camperso envelope format %d", p[3]),
				 errdetail("This version of camperso reads envelope format %d.", SECURITY_ENVELOPE_FORMAT)));
	return (int32) ((uint32) p[4] << 24 | (uint32) p[5] << 16 | (uint32) p[6] << 8 | p[7]);
}

/* Decrypts an envelope into a new bytea (palloc'd), or raises an error. */
bytea *
SecurityDecrypt(const char *envelope, int len)
{
	const uint8 *p = (const uint8 *) envelope;
	int32		version = EnvelopeVersion(p, len);
	SecurityKey *key;
	bytea	   *plain;
	int			plain_len = len - SECURITY_ENVELOPE_OVERHEAD;

	key = SecurityKeyVersion(version, true);
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_DECRYPT),
				 errmsg("camperso envelope names unknown key version %d", version),
				 errdetail("The envelope was made under a key this database does not have, or its header was altered.")));
	plain = palloc(VARHDRSZ + plain_len);
	SET_VARSIZE(plain, VARHDRSZ + plain_len);
	if (!SecurityGcmOpen(key->enc_key, p, SECURITY_ENVELOPE_HEADER,
						 p + SECURITY_ENVELOPE_HEADER, len - SECURITY_ENVELOPE_HEADER,
						 (uint8 *) VARDATA(plain)))
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_DECRYPT),
				 errmsg("camperso envelope failed authentication"),
				 errdetail("The ciphertext, its header or its tag was altered, or it was not made under key version %d.",
						   version)));
	return plain;
}

/* camperso.encrypt(data bytea) RETURNS bytea: an envelope under the current key. */
Datum
camperso_encrypt(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_BYTEA_P(SecurityEncrypt(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data)));
}

/* camperso.decrypt(envelope bytea) RETURNS bytea: the plaintext, or an error. */
Datum
camperso_decrypt(PG_FUNCTION_ARGS)
{
	bytea	   *env = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_BYTEA_P(SecurityDecrypt(VARDATA_ANY(env), VARSIZE_ANY_EXHDR(env)));
}

/*
 * camperso.envelope_key_version(envelope bytea) RETURNS integer: the key
 * version an envelope names, without decrypting it.
 */
Datum
camperso_envelope_key_version(PG_FUNCTION_ARGS)
{
	bytea	   *env = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_INT32(EnvelopeVersion((const uint8 *) VARDATA_ANY(env), VARSIZE_ANY_EXHDR(env)));
}
