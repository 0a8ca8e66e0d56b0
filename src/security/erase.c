/*-------------------------------------------------------------------------
 *
 * erase.c
 *	  What camperso.forget_user() needs from C: telling whether a stored
 *	  payload (clear, or an envelope decrypted here) mentions a user.
 *
 * A mention is one of the needles (the clear id and its pseudonyms) as a
 * whole JSON string anywhere ("u1", not "u10"), or as the bare value of a
 * user-id key ("user_id": 42), so a number 42 elsewhere in a message does
 * not make it the message of user 42. Plain text search rather than JSON
 * parsing, because quarantined payloads are by definition often not valid
 * JSON, and erasure must find the user there as well.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "core/errors.h"
#include "security/security.h"

PG_FUNCTION_INFO_V1(camperso_payload_mentions);

/* Whether c is JSON whitespace. */
static inline bool
JsonSpace(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether c ends an unquoted JSON value (a number or a bare word). */
static inline bool
ValueEnd(unsigned char c)
{
	return JsonSpace(c) || c == ',' || c == '}' || c == ']';
}

/* Appends s (len bytes) to buf as a JSON string, quotes included. */
static void
AppendJsonString(StringInfo buf, const char *s, int len)
{
	char	   *tmp = pnstrdup(s, len);

	escape_json(buf, tmp);
	pfree(tmp);
}

/* Next occurrence of pat in [p, end), or NULL. */
static const char *
Find(const char *p, const char *end, const char *pat, int plen)
{
	while (p + plen <= end)
	{
		const char *hit = memchr(p, pat[0], end - p - plen + 1);

		if (hit == NULL)
			return NULL;
		if (memcmp(hit, pat, plen) == 0)
			return hit;
		p = hit + 1;
	}
	return NULL;
}

/*
 * Whether data holds needle as a JSON string anywhere ("u1", escaped as
 * JSON escapes it), or as the bare value of one of the keys ("user_id": 42,
 * also in malformed text such as "user_id": u1}).
 */
static bool
Mentions(const char *data, int len, const char *needle, int nlen,
		 const char **keys, int nkeys)
{
	const char *end = data + len;
	StringInfoData pat;
	int			k;

	if (nlen == 0)
		return false;
	initStringInfo(&pat);
	AppendJsonString(&pat, needle, nlen);
	if (Find(data, end, pat.data, pat.len))
		return true;

	for (k = 0; k < nkeys; k++)
	{
		const char *p = data;
		const char *hit;

		resetStringInfo(&pat);
		AppendJsonString(&pat, keys[k], strlen(keys[k]));
		while ((hit = Find(p, end, pat.data, pat.len)) != NULL)
		{
			const char *v = hit + pat.len;

			p = hit + 1;
			while (v < end && JsonSpace(*v))
				v++;
			if (v >= end || *v != ':')
				continue;
			v++;
			while (v < end && JsonSpace(*v))
				v++;
			if (end - v >= nlen && memcmp(v, needle, nlen) == 0 &&
				(v + nlen == end || ValueEnd((unsigned char) v[nlen])))
				return true;
		}
	}
	return false;
}

/* Whether data looks like an envelope (magic and minimal length). */
static bool
LooksLikeEnvelope(const char *data, int len)
{
	return len >= SECURITY_ENVELOPE_OVERHEAD &&
		memcmp(data, SECURITY_ENVELOPE_MAGIC, 3) == 0 &&
		(unsigned char) data[3] == SECURITY_ENVELOPE_FORMAT;
}

/*
 * camperso.payload_mentions(data bytea, encrypted boolean, needles text[],
 * keys text[]) RETURNS boolean: whether data mentions any needle, as a JSON
 * string anywhere or as the bare value of one of keys. encrypted true: data
 * is an envelope, decrypted first (a tampered one is an error: erasure must
 * not skip it silently); NULL: decrypted when it looks like an envelope;
 * false: searched as is. Admin-only (it decrypts).
 */
Datum
camperso_payload_mentions(PG_FUNCTION_ARGS)
{
	bytea	   *data;
	Datum	   *elems;
	bool	   *enulls;
	int			nelems;
	Datum	   *kelems;
	bool	   *knulls;
	int			nkeys = 0;
	const char **keys;
	const char *p;
	int			len;
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	data = PG_GETARG_BYTEA_PP(0);
	p = VARDATA_ANY(data);
	len = VARSIZE_ANY_EXHDR(data);

	if (PG_ARGISNULL(1) ? LooksLikeEnvelope(p, len) : PG_GETARG_BOOL(1))
	{
		bytea	   *plain = SecurityDecrypt(p, len);

		p = VARDATA(plain);
		len = VARSIZE(plain) - VARHDRSZ;
	}

	if (!PG_ARGISNULL(3))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT,
						  &kelems, &knulls, &nkeys);
	keys = palloc(sizeof(char *) * Max(nkeys, 1));
	for (i = 0; i < nkeys; i++)
		keys[i] = knulls[i] ? "" : TextDatumGetCString(kelems[i]);

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &enulls, &nelems);
	for (i = 0; i < nelems; i++)
	{
		text	   *t;

		if (enulls[i])
			continue;
		t = DatumGetTextPP(elems[i]);
		if (Mentions(p, len, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), keys, nkeys))
			PG_RETURN_BOOL(true);
	}
	PG_RETURN_BOOL(false);
}
