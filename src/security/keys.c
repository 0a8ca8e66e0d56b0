/*-------------------------------------------------------------------------
 *
 * keys.c
 *	  Data keys: where they are stored, how they are wrapped by an outside
 *	  key-encryption key, and the per-backend cache that keeps
 *	  camperso.pseudonymize() fast.
 *
 * Storage. camperso.keys holds one row per key version: 32 random bytes
 * (OpenSSL RAND_bytes), either as is or wrapped (AES-256-GCM) under a
 * key-encryption key (KEK) printed by the command in camperso.key_command,
 * as ssl_passphrase_command does for TLS keys. Every privilege on the table
 * is revoked: no role but its owner (the extension owner) may read it. Key
 * bytes are read here, by a heap scan in compiled code that needs no
 * privilege, and written by camperso.rotate_key()/rewrap_keys(), which are
 * SECURITY DEFINER with a pinned search_path. SQL never sees key bytes.
 *
 * Versions. The newest version is the current one: it makes new pseudonyms
 * and new envelopes. Older versions are kept, so that envelopes made under
 * them still decrypt and pseudonyms made under them can still be found
 * (camperso.pseudonyms() gives a value's pseudonym under every version, for
 * joins across a rotation and for erasure). Pseudonyms are one-way, so they
 * cannot be re-keyed in place: rotation starts new pseudonyms, it does not
 * rewrite old ones.
 *
 * Cache. The first use in a backend loads every version, unwraps it and
 * derives its two working keys (HMAC key for pseudonyms, AES key for
 * envelopes) into TopMemoryContext. A relcache invalidation of
 * camperso.keys (sent by rotate_key/rewrap_keys at commit, and by any DDL
 * on the table or DROP EXTENSION) marks the cache stale; it is reloaded at
 * the next use. The scan uses the catalog snapshot, which is refreshed by
 * the same invalidations, so a reload always sees the committed rotation.
 * Stale key material is zeroed before it is freed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "core/errors.h"
#include "security/security.h"

PG_FUNCTION_INFO_V1(camperso_rotate_key);
PG_FUNCTION_INFO_V1(camperso_rewrap_keys);
PG_FUNCTION_INFO_V1(camperso_key_fingerprint);

/* camperso.key_command: prints the KEK (64 hex digits) on its first line. */
char	   *security_key_command = NULL;

/* Most KEKs a command may print: the current one, then older ones. */
#define MAX_KEKS			8
/* Longest output read from the key command. */
#define KEY_COMMAND_MAX_OUTPUT	8192
/* A wrapped data key: nonce, 32 encrypted bytes, tag. */
#define WRAPPED_KEY_LEN		(SECURITY_NONCE_LEN + SECURITY_KEY_LEN + SECURITY_TAG_LEN)

typedef struct Kek
{
	uint8		key[SECURITY_KEY_LEN];
	char		fingerprint[17];
} Kek;

/* The per-backend cache; everything in TopMemoryContext. */
static bool cache_valid = false;
static bool callback_registered = false;
static Oid	cache_relid = InvalidOid;
static int	cache_nkeys = 0;
static SecurityKey *cache_keys = NULL;	/* sorted by version, ascending */
static SecurityKey **cache_key_ptrs = NULL;

/* Defines camperso.key_command; must run before the prefix is reserved. */
void
SecurityDefineGucs(void)
{
	DefineCustomStringVariable("camperso.key_command",
							   "Command that prints the key-encryption key for camperso's data keys.",
							   "Its first output line is the current key-encryption key as 64 "
							   "hexadecimal digits; further lines may give older ones, for "
							   "camperso.rewrap_keys(). Empty: data keys are stored unwrapped.",
							   &security_key_command,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}

/* Fills buf with cryptographically strong random bytes, or raises ERROR. */
void
SecurityRandomBytes(uint8 *buf, int len)
{
	if (RAND_bytes(buf, len) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("could not generate random bytes"),
				 errdetail("OpenSSL's RAND_bytes failed.")));
}

/* Marks the cache stale when camperso.keys (or everything) is invalidated. */
static void
KeysRelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == cache_relid)
		cache_valid = false;
}

/* Zeroes and frees the cached keys. */
static void
KeysCacheFree(void)
{
	int			i;

	for (i = 0; i < cache_nkeys; i++)
	{
		if (cache_keys[i].mac_state)
			SecurityMacStateFree(cache_keys[i].mac_state);
	}
	if (cache_keys)
	{
		explicit_bzero(cache_keys, sizeof(SecurityKey) * cache_nkeys);
		pfree(cache_keys);
	}
	if (cache_key_ptrs)
		pfree(cache_key_ptrs);
	cache_keys = NULL;
	cache_key_ptrs = NULL;
	cache_nkeys = 0;
	cache_valid = false;
}

/*
 * Finds camperso.keys and checks it is the extension's: a plain table in
 * schema camperso owned by the schema's owner. A look-alike made by someone
 * else is refused rather than trusted.
 */
static Oid
KeysRelid(void)
{
	Oid			nspid;
	Oid			relid;
	Oid			nspowner;
	HeapTuple	tup;

	nspid = get_namespace_oid("camperso", true);
	relid = OidIsValid(nspid) ? get_relname_relid("keys", nspid) : InvalidOid;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("camperso keys are not installed in this database"),
				 errhint("Run CREATE EXTENSION camperso.")));

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nspid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nspid);
	nspowner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);

	if (get_rel_relkind(relid) != RELKIND_RELATION ||
		!OidIsValid(nspowner))
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("camperso.keys is not a table")));
	return relid;
}

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
static void
HexEncode(const uint8 *in, int len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	int			i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int
HexDigit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Derives the KEK's fingerprint: 16 hex digits of SHA-256 over a label. */
static void
KekFingerprint(Kek *kek)
{
	static const char label[] = "camperso key-encryption key";
	uint8		digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (!HMAC(EVP_sha256(), kek->key, SECURITY_KEY_LEN,
			  (const unsigned char *) label, sizeof(label) - 1, digest, &dlen))
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("could not fingerprint the key-encryption key")));
	HexEncode(digest, 8, kek->fingerprint);
	explicit_bzero(digest, sizeof(digest));
}

/*
 * Runs camperso.key_command and parses its output into keks (at most
 * MAX_KEKS). Returns how many; 0 when no command is configured.
 */
static int
KeysFetchKeks(Kek *keks)
{
	FILE	   *fh;
	char	   *buf;
	size_t		total = 0;
	size_t		n;
	int			rc;
	int			nkeks = 0;
	char	   *line;
	char	   *save = NULL;

	if (security_key_command == NULL || security_key_command[0] == '\0')
		return 0;

	buf = palloc0(KEY_COMMAND_MAX_OUTPUT + 1);
	fflush(NULL);
	fh = OpenPipeStream(security_key_command, "r");
	if (fh == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("could not run camperso.key_command: %m")));
	while (total < KEY_COMMAND_MAX_OUTPUT &&
		   (n = fread(buf + total, 1, KEY_COMMAND_MAX_OUTPUT - total, fh)) > 0)
		total += n;
	rc = ClosePipeStream(fh);
	if (rc != 0)
	{
		explicit_bzero(buf, KEY_COMMAND_MAX_OUTPUT);
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("camperso.key_command failed"),
				 errdetail("The command %s.", wait_result_to_str(rc))));
	}

	for (line = strtok_r(buf, "\n", &save); line != NULL && nkeks < MAX_KEKS;
		 line = strtok_r(NULL, "\n", &save))
	{
		int			len = strlen(line);
		int			i;

		while (len > 0 && isspace((unsigned char) line[len - 1]))
			len--;
		while (len > 0 && isspace((unsigned char) *line))
			line++, len--;
		if (len == 0)
			continue;
		if (len != 2 * SECURITY_KEY_LEN)
			break;
		for (i = 0; i < SECURITY_KEY_LEN; i++)
		{
			int			hi = HexDigit(line[2 * i]);
			int			lo = HexDigit(line[2 * i + 1]);

			if (hi < 0 || lo < 0)
				break;
			keks[nkeks].key[i] = (uint8) (hi << 4 | lo);
		}
		if (i < SECURITY_KEY_LEN)
			break;
		KekFingerprint(&keks[nkeks]);
		nkeks++;
	}
	explicit_bzero(buf, KEY_COMMAND_MAX_OUTPUT);
	pfree(buf);

	if (nkeks == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("camperso.key_command printed no key-encryption key"),
				 errdetail("Its first line must be 64 hexadecimal digits (32 bytes)."),
				 errhint("Check the command set in camperso.key_command.")));
	return nkeks;
}

/* The additional data bound to a wrapped data key: its version. */
static int
WrapAad(int32 version, uint8 *aad)
{
	return snprintf((char *) aad, 48, "camperso data key version %d", version);
}

/*
 * Unwraps one stored key into master: a plain 32-byte key, or a wrapped one
 * whose KEK (by fingerprint) must be among keks.
 */
static void
KeysUnwrap(int32 version, bytea *stored, const char *fingerprint,
		   Kek *keks, int nkeks, uint8 *master)
{
	uint8		aad[48];
	int			aad_len;
	int			i;

	if (fingerprint == NULL)
	{
		if (VARSIZE_ANY_EXHDR(stored) != SECURITY_KEY_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_CAMPERSO_KEY),
					 errmsg("data key version %d is malformed", version)));
		memcpy(master, VARDATA_ANY(stored), SECURITY_KEY_LEN);
		return;
	}

	if (nkeks == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("data key version %d is wrapped but camperso.key_command is not set", version),
				 errhint("Set camperso.key_command in postgresql.conf to the command that prints the key-encryption key.")));
	for (i = 0; i < nkeks; i++)
		if (strcmp(keks[i].fingerprint, fingerprint) == 0)
			break;
	if (i == nkeks)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("data key version %d is wrapped by another key-encryption key", version),
				 errdetail("It needs the key-encryption key with fingerprint %s; camperso.key_command printed %s.",
						   fingerprint, keks[0].fingerprint),
				 errhint("Make camperso.key_command print that key, at least on a later line.")));
	if (VARSIZE_ANY_EXHDR(stored) != WRAPPED_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("data key version %d is malformed", version)));
	aad_len = WrapAad(version, aad);
	if (!SecurityGcmOpen(keks[i].key, aad, aad_len,
						 (uint8 *) VARDATA_ANY(stored), WRAPPED_KEY_LEN, master))
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("data key version %d does not unwrap", version),
				 errdetail("The stored key fails authentication under the key-encryption key %s.",
						   fingerprint)));
}

/* Derives a working key from a data key and a label (HMAC-SHA256). */
static void
KeysDerive(const uint8 *master, const char *label, uint8 *out)
{
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), master, SECURITY_KEY_LEN,
			  (const unsigned char *) label, strlen(label), out, &len) ||
		len != SECURITY_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("could not derive a working key")));
}

/* Column numbers of camperso.keys, found by name. */
typedef struct KeysColumns
{
	int			version;
	int			key;
	int			fingerprint;
} KeysColumns;

static void
KeysFindColumns(TupleDesc desc, KeysColumns *cols)
{
	int			i;

	cols->version = cols->key = cols->fingerprint = -1;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), "version") == 0 && att->atttypid == INT4OID)
			cols->version = i;
		else if (strcmp(NameStr(att->attname), "key") == 0 && att->atttypid == BYTEAOID)
			cols->key = i;
		else if (strcmp(NameStr(att->attname), "kek_fingerprint") == 0 && att->atttypid == TEXTOID)
			cols->fingerprint = i;
	}
	if (cols->version < 0 || cols->key < 0 || cols->fingerprint < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("camperso.keys does not have the expected columns")));
}

static int
KeyCompare(const void *a, const void *b)
{
	int32		va = ((const SecurityKey *) a)->version;
	int32		vb = ((const SecurityKey *) b)->version;

	return (va > vb) - (va < vb);
}

/*
 * Loads every key version into the cache. Built aside and swapped in at the
 * end, so an error leaves the cache empty, never half-filled.
 */
static void
KeysLoad(void)
{
	Oid			relid = KeysRelid();
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	KeysColumns cols;
	Kek			keks[MAX_KEKS];
	int			nkeks = -1;		/* not fetched yet */
	SecurityKey *keys;
	int			nkeys = 0;
	int			cap = 4;
	int			i;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(KeysRelcacheCallback, (Datum) 0);
		callback_registered = true;
	}
	KeysCacheFree();

	keys = MemoryContextAllocZero(TopMemoryContext, sizeof(SecurityKey) * cap);
	PG_TRY();
	{
		rel = table_open(relid, AccessShareLock);
		KeysFindColumns(RelationGetDescr(rel), &cols);
		scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Datum		values[MaxTupleAttributeNumber];
			bool		nulls[MaxTupleAttributeNumber];
			uint8		master[SECURITY_KEY_LEN];
			char	   *fp = NULL;
			int32		version;
			char		label[64];

			heap_deform_tuple(tup, RelationGetDescr(rel), values, nulls);
			if (nulls[cols.version] || nulls[cols.key])
				continue;
			version = DatumGetInt32(values[cols.version]);
			if (!nulls[cols.fingerprint])
				fp = TextDatumGetCString(values[cols.fingerprint]);
			if (fp != NULL && nkeks < 0)
				nkeks = KeysFetchKeks(keks);
			KeysUnwrap(version, DatumGetByteaPP(values[cols.key]), fp,
					   keks, Max(nkeks, 0), master);

			if (nkeys == cap)
			{
				cap *= 2;
				keys = repalloc(keys, sizeof(SecurityKey) * cap);
			}
			memset(&keys[nkeys], 0, sizeof(SecurityKey));
			keys[nkeys].version = version;
			KeysDerive(master, "camperso pseudonymize", keys[nkeys].mac_key);
			snprintf(label, sizeof(label), "camperso encrypt");
			KeysDerive(master, label, keys[nkeys].enc_key);
			explicit_bzero(master, sizeof(master));
			nkeys++;
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	PG_CATCH();
	{
		explicit_bzero(keks, sizeof(keks));
		explicit_bzero(keys, sizeof(SecurityKey) * cap);
		pfree(keys);
		PG_RE_THROW();
	}
	PG_END_TRY();
	explicit_bzero(keks, sizeof(keks));

	if (nkeys == 0)
	{
		pfree(keys);
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("camperso has no data key"),
				 errhint("An administrator can create one with camperso.rotate_key().")));
	}

	qsort(keys, nkeys, sizeof(SecurityKey), KeyCompare);
	cache_key_ptrs = MemoryContextAlloc(TopMemoryContext, sizeof(SecurityKey *) * nkeys);
	for (i = 0; i < nkeys; i++)
		cache_key_ptrs[i] = &keys[nkeys - 1 - i];	/* newest first */
	cache_keys = keys;
	cache_nkeys = nkeys;
	cache_relid = relid;
	cache_valid = true;
}

static void
KeysEnsureLoaded(void)
{
	if (!cache_valid)
		KeysLoad();
}

/*
 * The current (newest) key. Valid until the next call into this file that
 * may reload the cache; callers use it at once.
 */
SecurityKey *
SecurityCurrentKey(void)
{
	KeysEnsureLoaded();
	return &cache_keys[cache_nkeys - 1];
}

/* Key by version; NULL (missing_ok) or ERROR when there is no such version. */
SecurityKey *
SecurityKeyVersion(int32 version, bool missing_ok)
{
	int			i;

	KeysEnsureLoaded();
	for (i = 0; i < cache_nkeys; i++)
		if (cache_keys[i].version == version)
			return &cache_keys[i];
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KEY),
				 errmsg("camperso has no data key version %d", version)));
	return NULL;
}

/* Every key, newest first; returns how many. */
int
SecurityKeyVersions(SecurityKey ***keys)
{
	KeysEnsureLoaded();
	*keys = cache_key_ptrs;
	return cache_nkeys;
}

/* Wraps master under kek for version into out (WRAPPED_KEY_LEN bytes). */
static void
KeysWrap(int32 version, const uint8 *master, Kek *kek, uint8 *out)
{
	uint8		aad[48];
	int			aad_len = WrapAad(version, aad);

	SecurityGcmSeal(kek->key, aad, aad_len, master, SECURITY_KEY_LEN, out);
}

/* Builds the stored form of a key: plain, or wrapped under keks[0]. */
static bytea *
KeysStoredForm(int32 version, const uint8 *master, Kek *keks, int nkeks,
			   char **fingerprint)
{
	bytea	   *stored;

	if (nkeks == 0)
	{
		stored = palloc(VARHDRSZ + SECURITY_KEY_LEN);
		SET_VARSIZE(stored, VARHDRSZ + SECURITY_KEY_LEN);
		memcpy(VARDATA(stored), master, SECURITY_KEY_LEN);
		*fingerprint = NULL;
	}
	else
	{
		stored = palloc(VARHDRSZ + WRAPPED_KEY_LEN);
		SET_VARSIZE(stored, VARHDRSZ + WRAPPED_KEY_LEN);
		KeysWrap(version, master, &keks[0], (uint8 *) VARDATA(stored));
		*fingerprint = pstrdup(keks[0].fingerprint);
	}
	return stored;
}

/*
 * camperso.rotate_key() RETURNS integer: makes a new data key version,
 * current from the next use on, and returns its number. SECURITY DEFINER:
 * the caller needs EXECUTE only, never access to camperso.keys.
 */
Datum
camperso_rotate_key(PG_FUNCTION_ARGS)
{
	Oid			relid = KeysRelid();
	Kek			keks[MAX_KEKS];
	int			nkeks;
	uint8		master[SECURITY_KEY_LEN];
	int32		version;
	bytea	   *stored;
	char	   *fp;
	Oid			argtypes[4] = {INT4OID, BYTEAOID, TEXTOID, BOOLOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	int			rc;

	SPI_connect();
	/* One rotation at a time: version numbers are max + 1. */
	LockRelationOid(relid, ExclusiveLock);
	rc = SPI_execute("SELECT coalesce(max(version), 0) + 1 FROM camperso.keys", true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read camperso.keys");
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	nkeks = KeysFetchKeks(keks);
	SecurityRandomBytes(master, SECURITY_KEY_LEN);
	stored = KeysStoredForm(version, master, keks, nkeks, &fp);
	explicit_bzero(master, sizeof(master));
	explicit_bzero(keks, sizeof(keks));

	values[0] = Int32GetDatum(version);
	values[1] = PointerGetDatum(stored);
	if (fp)
		values[2] = CStringGetTextDatum(fp);
	else
		nulls[2] = 'n';
	/* The key made by CREATE EXTENSION is marked so a restore replaces it. */
	values[3] = BoolGetDatum(creating_extension);
	rc = SPI_execute_with_args("INSERT INTO camperso.keys (version, key, kek_fingerprint, from_install) "
							   "VALUES ($1, $2, $3, $4)",
							   4, argtypes, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not store the new data key");
	explicit_bzero(VARDATA(stored), VARSIZE(stored) - VARHDRSZ);
	SPI_finish();

	/* Other backends reload at commit; this one at its next use. */
	CacheInvalidateRelcacheByRelid(relid);
	cache_valid = false;

	PG_RETURN_INT32(version);
}

/*
 * camperso.rewrap_keys() RETURNS integer: wraps every data key under the
 * current KEK (the first line of camperso.key_command), unwrapping each
 * with whichever printed KEK matches, or taking it as is when stored plain.
 * Used after setting key_command on an installation that had none, and to
 * move to a new KEK (print the new one first and the old one after it).
 * Returns how many keys were rewritten.
 */
Datum
camperso_rewrap_keys(PG_FUNCTION_ARGS)
{
	Oid			relid = KeysRelid();
	Kek			keks[MAX_KEKS];
	int			nkeks;
	int			count = 0;
	uint64		i;
	int			rc;
	SPITupleTable *rows;
	uint64		nrows;

	nkeks = KeysFetchKeks(keks);
	if (nkeks == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("camperso.key_command is not set"),
				 errhint("Set camperso.key_command in postgresql.conf and reload before rewrapping keys.")));

	SPI_connect();
	LockRelationOid(relid, ExclusiveLock);
	rc = SPI_execute("SELECT version, key, kek_fingerprint FROM camperso.keys ORDER BY version", true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read camperso.keys");
	rows = SPI_tuptable;
	nrows = SPI_processed;

	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tup = rows->vals[i];
		bool		isnull;
		int32		version = DatumGetInt32(SPI_getbinval(tup, rows->tupdesc, 1, &isnull));
		bytea	   *stored = DatumGetByteaPP(SPI_getbinval(tup, rows->tupdesc, 2, &isnull));
		char	   *fp = SPI_getvalue(tup, rows->tupdesc, 3);
		uint8		master[SECURITY_KEY_LEN];
		bytea	   *restored;
		char	   *newfp;
		Oid			argtypes[3] = {INT4OID, BYTEAOID, TEXTOID};
		Datum		values[3];

		if (fp != NULL && strcmp(fp, keks[0].fingerprint) == 0)
			continue;			/* already under the current KEK */
		KeysUnwrap(version, stored, fp, keks, nkeks, master);
		restored = KeysStoredForm(version, master, keks, nkeks, &newfp);
		explicit_bzero(master, sizeof(master));
		values[0] = Int32GetDatum(version);
		values[1] = PointerGetDatum(restored);
		values[2] = CStringGetTextDatum(newfp);
		if (SPI_execute_with_args("UPDATE camperso.keys SET key = $2, kek_fingerprint = $3 WHERE version = $1",
								  3, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not rewrap data key version %d", version);
		explicit_bzero(VARDATA(restored), VARSIZE(restored) - VARHDRSZ);
		count++;
	}
	explicit_bzero(keks, sizeof(keks));
	SPI_finish();

	CacheInvalidateRelcacheByRelid(relid);
	cache_valid = false;
	PG_RETURN_INT32(count);
}

/*
 * camperso.key_fingerprint() RETURNS text: the fingerprint of the KEK that
 * camperso.key_command prints now (NULL when unset), to compare with
 * camperso.key_versions.kek_fingerprint. Runs the command.
 */
Datum
camperso_key_fingerprint(PG_FUNCTION_ARGS)
{
	Kek			keks[MAX_KEKS];
	int			nkeks = KeysFetchKeks(keks);
	text	   *result;

	if (nkeks == 0)
		PG_RETURN_NULL();
	result = cstring_to_text(keks[0].fingerprint);
	explicit_bzero(keks, sizeof(keks));
	PG_RETURN_TEXT_P(result);
}
