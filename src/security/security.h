/*-------------------------------------------------------------------------
 *
 * security.h
 *	  Security stage: data keys and their per-backend cache, keyed
 *	  pseudonymisation, envelope encryption of payloads, and the PII rules
 *	  a source applies at ingest.
 *
 * The split:
 *	  keys.c			camperso.keys, the key-encryption key command, the
 *						per-backend cache of unwrapped data keys,
 *						camperso.rotate_key() and camperso.rewrap_keys()
 *	  pseudonymize.c	HMAC-SHA256 pseudonyms, camperso.sha256()
 *	  crypt.c			AES-256-GCM envelopes: camperso.encrypt()/decrypt()
 *	  pii.c				a source's "pii" and "raw" options: compiled once per
 *						batch, applied to each decoded message before typing
 *	  rls.c				whether row-level security lets the land path insert
 *	  erase.c			payload search used by camperso.forget_user()
 *
 * Key material never leaves compiled code: SQL sees pseudonyms, envelopes
 * and plaintexts (the latter only through functions whose EXECUTE is
 * granted to camperso_pii_reader and camperso_admin).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_SECURITY_H
#define CAMPERSO_SECURITY_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

#include "core/message.h"

/* Sizes of the cryptographic pieces. */
#define SECURITY_KEY_LEN		32	/* data keys, derived keys, KEK */
#define SECURITY_PSEUDONYM_LEN	64	/* hex of an HMAC-SHA256 */

/* The envelope: magic "CPE", format byte, key version, nonce, ct, tag. */
#define SECURITY_ENVELOPE_MAGIC		"CPE"
#define SECURITY_ENVELOPE_FORMAT	1
#define SECURITY_ENVELOPE_HEADER	8	/* magic(3) + format(1) + version(4) */
#define SECURITY_NONCE_LEN			12
#define SECURITY_TAG_LEN			16
#define SECURITY_ENVELOPE_OVERHEAD	(SECURITY_ENVELOPE_HEADER + SECURITY_NONCE_LEN + SECURITY_TAG_LEN)

/* One data key version, unwrapped, with the keys derived from it. */
typedef struct SecurityKey
{
	int32		version;
	uint8		mac_key[SECURITY_KEY_LEN];	/* pseudonyms */
	uint8		enc_key[SECURITY_KEY_LEN];	/* envelopes */
	void	   *mac_state;		/* pseudonymize.c's precomputed HMAC state */
} SecurityKey;

/* keys.c */
extern char *security_key_command;
extern void SecurityDefineGucs(void);
extern SecurityKey *SecurityCurrentKey(void);
extern SecurityKey *SecurityKeyVersion(int32 version, bool missing_ok);
extern int	SecurityKeyVersions(SecurityKey ***keys);
extern void SecurityRandomBytes(uint8 *buf, int len);

/* pseudonymize.c */
extern void SecurityPseudonymize(SecurityKey *key, const char *value, int len,
								 char *out);
extern void SecurityMacStateFree(void *state);

/* crypt.c */
extern bytea *SecurityEncrypt(const char *data, int len);
extern bytea *SecurityDecrypt(const char *envelope, int len);
extern void SecurityGcmSeal(const uint8 *key, const uint8 *aad, int aad_len,
							const uint8 *plain, int len, uint8 *out);
extern bool SecurityGcmOpen(const uint8 *key, const uint8 *aad, int aad_len,
							const uint8 *sealed, int sealed_len, uint8 *out);

/* pii.c: what a source does with PII fields and with _raw. */
typedef enum SecurityPiiAction
{
	SECURITY_PII_PSEUDONYMIZE,
	SECURITY_PII_DROP,
	SECURITY_PII_TRUNCATE,
	SECURITY_PII_ENCRYPT
} SecurityPiiAction;

typedef enum SecurityRawMode
{
	SECURITY_RAW_CLEAR,			/* _raw and quarantine payloads as received */
	SECURITY_RAW_ENCRYPT,		/* stored as envelopes */
	SECURITY_RAW_DROP			/* _raw NULL; quarantine payload encrypted */
} SecurityRawMode;

typedef struct SecurityPiiField
{
	char	   *name;
	SecurityPiiAction action;
	bool		binary;			/* encrypt into a bytea column: raw envelope */
} SecurityPiiField;

typedef struct SecurityPii
{
	int			nfields;
	SecurityPiiField *fields;
	SecurityRawMode raw;
} SecurityPii;

/*
 * Compiles a source's options (its "pii" and "raw" keys) into the current
 * memory context; NULL when the source keeps everything in clear. Invalid
 * options raise ERROR with SQLSTATE 22023.
 */
extern SecurityPii *SecurityPiiCompile(Jsonb *options);
/*
 * The same from the options' JSON text (NULL: no options), for a source
 * landing into relid: an "encrypt" field whose column is bytea gets the
 * envelope's bytes, any other column its hex text ("\x...").
 */
extern SecurityPii *SecurityPiiCompileText(const char *options, Oid relid);

/*
 * Rewrites msg's PII fields in place (new strings in the current memory
 * context). Returns false, with *rule = "pii", *field and *reason, when a
 * field cannot be rewritten safely (e.g. "truncate" on a value that is not
 * an IP address); the caller quarantines the message then.
 */
extern bool SecurityApplyPii(SecurityPii *pii, CampersoMessage *msg,
							 const char **rule, const char **field, char **reason);

/*
 * Applies the pii action for "_key" (the Kafka key) to *key and *len: returns
 * false when the key is to be dropped (stored as NULL), else true with
 * *key and *len pointing at the pseudonym (or unchanged without an action).
 */
extern bool SecurityPiiKey(SecurityPii *pii, const char **key, int *len);

/*
 * Refuses (ERROR) a _raw column of type typid that cannot hold what the
 * options ask for: an envelope needs bytea.
 */
extern void SecurityPiiCheckRaw(SecurityPii *pii, Oid typid, const char *relname);

/*
 * What a source stores in _raw for a message: the payload as is, its
 * envelope, or NULL (store nothing). pii may be NULL (clear).
 */
extern bytea *SecurityRawValue(SecurityPii *pii, const char *payload, int len);

/*
 * What goes into camperso.quarantine.payload for a message of this source,
 * and whether it is an envelope.
 */
extern bytea *SecurityQuarantineValue(SecurityPii *pii, const char *payload,
									  int len, bool *encrypted);

/* rls.c: whether row-level security lets the current user insert anything. */
extern bool SecurityRlsInsertUnchecked(Relation rel);

/* Truncates an IPv4 address to its /24 (IPv6 to /48); NULL if not an IP. */
extern char *SecurityTruncateIp(const char *value);

#endif							/* CAMPERSO_SECURITY_H */
