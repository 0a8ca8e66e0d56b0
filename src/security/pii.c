/*-------------------------------------------------------------------------
 *
 * pii.c
 *	  PII at ingest: a source's "pii" and "raw" options, compiled once per
 *	  batch and applied to every decoded message before its fields are typed
 *	  into the target, so that a clear identifier never reaches a table.
 *	  Also the masking helpers the analyst views use.
 *
 * The options (camperso.create_source(..., options => ...)):
 *
 *	  "pii": {"<field>": "<action>", ...}
 *		  pseudonymize	the value becomes its pseudonym (camperso.pseudonymize
 *						of the string, or of the JSON text of a non-string)
 *		  drop			the field is removed, as if the message lacked it
 *		  truncate		an IPv4 address keeps its /24 (a.b.c.0), an IPv6
 *						address its /48; any other value sends the message
 *						to the quarantine (rule "pii"), never to the target
 *		  encrypt		the value becomes its envelope: the envelope's bytes
 *						when the target column is bytea, its hex text
 *						("\x...", castable to bytea) otherwise; readable with
 *						camperso.decrypt() by the roles allowed
 *	  The Kafka key may be named as "_key" (pseudonymize or drop): it often
 *	  holds the user id, and lands in _key and in the quarantine.
 *	  "raw": "encrypt" | "drop" | "clear"
 *		  what _raw (the message byte-exact) holds: its envelope, NULL, or
 *		  the bytes in clear. The default is "encrypt" when "pii" names any
 *		  field and "clear" otherwise; "clear" together with "pii" is refused,
 *		  since _raw would hold every field the pii option hides. The
 *		  quarantine payload of such a source is always an envelope (also
 *		  with "drop": a quarantined message must stay replayable).
 *
 * Every occurrence of a named field is rewritten, including duplicate keys
 * (the decoder keeps them all; a lookup sees only the last one).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "core/errors.h"
#include "security/security.h"

PG_FUNCTION_INFO_V1(camperso_check_pii_options);
PG_FUNCTION_INFO_V1(camperso_sources_check_pii);
PG_FUNCTION_INFO_V1(camperso_truncate_ip);
PG_FUNCTION_INFO_V1(camperso_mask_email);

static const struct
{
	const char *name;
	SecurityPiiAction action;
}			pii_actions[] =
{
	{"pseudonymize", SECURITY_PII_PSEUDONYMIZE},
	{"drop", SECURITY_PII_DROP},
	{"truncate", SECURITY_PII_TRUNCATE},
	{"encrypt", SECURITY_PII_ENCRYPT},
};

static const struct
{
	const char *name;
	SecurityRawMode mode;
}			raw_modes[] =
{
	{"clear", SECURITY_RAW_CLEAR},
	{"encrypt", SECURITY_RAW_ENCRYPT},
	{"drop", SECURITY_RAW_DROP},
};

/* The value of top-level key "name" in options, or NULL. */
static JsonbValue *
OptionValue(Jsonb *options, const char *name)
{
	JsonbValue	key;

	if (options == NULL || !JB_ROOT_IS_OBJECT(options))
		return NULL;
	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	return findJsonbValueFromContainer(&options->root, JB_FOBJECT, &key);
}

static char *
JbvText(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static void
InvalidPii(const char *detail_fmt, const char *arg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid pii option"),
			 errdetail(detail_fmt, arg),
			 errhint("Write \"pii\" as an object from field name to one of pseudonymize, drop, truncate, encrypt, "
					 "for example {\"pii\": {\"user_id\": \"pseudonymize\", \"ip\": \"truncate\"}}.")));
}

/* Compiles the "pii" object of the options into pii->fields. */
static void
CompileFields(JsonbValue *piiv, SecurityPii *pii)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			cap;
	char	   *field = NULL;

	if (piiv->type != jbvBinary || !JsonContainerIsObject(piiv->val.binary.data))
		InvalidPii("The value of \"pii\" is not a JSON object.", NULL);

	cap = Max(JsonContainerSize(piiv->val.binary.data), 1);
	pii->fields = palloc0(sizeof(SecurityPiiField) * cap);
	it = JsonbIteratorInit(piiv->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		int			i;

		if (tok == WJB_KEY)
		{
			field = JbvText(&v);
			if (field[0] == '\0')
				InvalidPii("A field name in \"pii\" is empty.", NULL);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		if (v.type != jbvString)
			InvalidPii("The action for field \"%s\" is not a string.", field);
		for (i = 0; i < lengthof(pii_actions); i++)
		{
			if (strlen(pii_actions[i].name) == v.val.string.len &&
				strncmp(pii_actions[i].name, v.val.string.val, v.val.string.len) == 0)
				break;
		}
		if (i == lengthof(pii_actions))
			InvalidPii("The action for field \"%s\" is not pseudonymize, drop, truncate or encrypt.", field);
		if (strcmp(field, "_key") == 0 &&
			pii_actions[i].action != SECURITY_PII_PSEUDONYMIZE &&
			pii_actions[i].action != SECURITY_PII_DROP)
			InvalidPii("The message key \"%s\" can only be pseudonymized or dropped.", field);
		pii->fields[pii->nfields].name = field;
		pii->fields[pii->nfields].action = pii_actions[i].action;
		pii->nfields++;
	}
}

/* See security.h. */
SecurityPii *
SecurityPiiCompile(Jsonb *options)
{
	SecurityPii *pii = palloc0(sizeof(SecurityPii));
	JsonbValue *piiv = OptionValue(options, "pii");
	JsonbValue *rawv = OptionValue(options, "raw");

	if (piiv != NULL && piiv->type != jbvNull)
		CompileFields(piiv, pii);

	pii->raw = pii->nfields > 0 ? SECURITY_RAW_ENCRYPT : SECURITY_RAW_CLEAR;
	if (rawv != NULL && rawv->type != jbvNull)
	{
		int			i;

		if (rawv->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid raw option"),
					 errdetail("The value of \"raw\" is not a string."),
					 errhint("Use one of \"encrypt\", \"drop\", \"clear\".")));
		for (i = 0; i < lengthof(raw_modes); i++)
		{
			if (strlen(raw_modes[i].name) == rawv->val.string.len &&
				strncmp(raw_modes[i].name, rawv->val.string.val, rawv->val.string.len) == 0)
				break;
		}
		if (i == lengthof(raw_modes))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid raw option \"%s\"", JbvText(rawv)),
					 errhint("Use one of \"encrypt\", \"drop\", \"clear\".")));
		pii->raw = raw_modes[i].mode;
	}
	if (pii->nfields > 0 && pii->raw == SECURITY_RAW_CLEAR)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a source with pii fields cannot keep raw payloads in clear"),
				 errdetail("_raw and the quarantine hold the message byte-exact, with every field that \"pii\" hides."),
				 errhint("Use \"raw\": \"encrypt\" (the default with pii) or \"raw\": \"drop\".")));

	if (pii->nfields == 0 && pii->raw == SECURITY_RAW_CLEAR)
	{
		pfree(pii);
		return NULL;
	}
	return pii;
}

/* See security.h. */
SecurityPii *
SecurityPiiCompileText(const char *options, Oid relid)
{
	SecurityPii *pii;
	int			i;

	if (options == NULL)
		return NULL;
	pii = SecurityPiiCompile(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(options))));
	for (i = 0; pii != NULL && i < pii->nfields; i++)
	{
		SecurityPiiField *pf = &pii->fields[i];
		AttrNumber	attnum;

		if (pf->action != SECURITY_PII_ENCRYPT || !OidIsValid(relid))
			continue;
		attnum = get_attnum(relid, pf->name);
		pf->binary = attnum != InvalidAttrNumber && get_atttype(relid, attnum) == BYTEAOID;
	}
	return pii;
}

/* The action for a field name, or NULL. */
static SecurityPiiField *
PiiFieldFor(SecurityPii *pii, const char *name)
{
	int			j;

	for (j = 0; j < pii->nfields; j++)
	{
		if (strcmp(pii->fields[j].name, name) == 0)
			return &pii->fields[j];
	}
	return NULL;
}

/* See security.h. */
bool
SecurityPiiKey(SecurityPii *pii, const char **key, int *len)
{
	SecurityPiiField *pf;
	char	   *out;

	if (pii == NULL || *key == NULL || (pf = PiiFieldFor(pii, "_key")) == NULL)
		return true;
	if (pf->action == SECURITY_PII_DROP)
		return false;
	out = palloc(SECURITY_PSEUDONYM_LEN + 1);
	SecurityPseudonymize(SecurityCurrentKey(), *key, *len, out);
	out[SECURITY_PSEUDONYM_LEN] = '\0';
	*key = out;
	*len = SECURITY_PSEUDONYM_LEN;
	return true;
}

/* The text a field's value is rewritten from: the string, or its JSON text. */
static void
FieldSource(CampersoField *f, const char **text, int *len)
{
	*text = f->text;
	*len = f->text_len;
}

/* See security.h. */
bool
SecurityApplyPii(SecurityPii *pii, CampersoMessage *msg,
				 const char **rule, const char **field, char **reason)
{
	int			i;
	int			kept = 0;

	if (pii == NULL || pii->nfields == 0)
		return true;

	for (i = 0; i < msg->nfields; i++)
	{
		CampersoField *f = &msg->fields[i];
		SecurityPiiField *pf = PiiFieldFor(pii, f->name);
		const char *src;
		int			len;

		if (pf == NULL || (f->kind == CJ_NULL && pf->action != SECURITY_PII_DROP))
		{
			msg->fields[kept++] = *f;
			continue;
		}

		FieldSource(f, &src, &len);
		switch (pf->action)
		{
			case SECURITY_PII_DROP:
				continue;		/* not kept */
			case SECURITY_PII_PSEUDONYMIZE:
				{
					char	   *out = palloc(SECURITY_PSEUDONYM_LEN + 1);

					SecurityPseudonymize(SecurityCurrentKey(), src, len, out);
					out[SECURITY_PSEUDONYM_LEN] = '\0';
					f->text = out;
					f->text_len = SECURITY_PSEUDONYM_LEN;
					f->kind = CJ_STRING;
					break;
				}
			case SECURITY_PII_TRUNCATE:
				{
					char	   *out = f->kind == CJ_STRING ? SecurityTruncateIp(src) : NULL;

					if (out == NULL)
					{
						*rule = "pii";
						*field = f->name;
						*reason = psprintf("field \"%s\" is not an IP address and cannot be truncated", f->name);
						return false;
					}
					f->text = out;
					f->text_len = strlen(out);
					break;
				}
			case SECURITY_PII_ENCRYPT:
				{
					bytea	   *env = SecurityEncrypt(src, len);
					int			elen = VARSIZE(env) - VARHDRSZ;
					char	   *out;

					if (pf->binary)
					{
						/* the envelope itself, for a bytea column */
						out = palloc(elen + 1);
						memcpy(out, VARDATA(env), elen);
						out[elen] = '\0';
						f->text_len = elen;
					}
					else
					{
						/* its hex text, the bytea input syntax */
						out = palloc(2 * elen + 3);
						out[0] = '\\';
						out[1] = 'x';
						hex_encode(VARDATA(env), elen, out + 2);
						out[2 * elen + 2] = '\0';
						f->text_len = 2 * elen + 2;
					}
					pfree(env);
					f->text = out;
					f->kind = CJ_STRING;
					break;
				}
		}
		msg->fields[kept++] = *f;
	}
	msg->nfields = kept;
	return true;
}

/* A bytea copy of len bytes. */
static bytea *
ByteaCopy(const char *data, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}

/* See security.h. */
void
SecurityPiiCheckRaw(SecurityPii *pii, Oid typid, const char *relname)
{
	if (pii != NULL && pii->raw == SECURITY_RAW_ENCRYPT && typid != BYTEAOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column _raw of %s must be bytea to hold encrypted payloads", relname),
				 errdetail("The source has pii fields, so _raw stores the message as an envelope."),
				 errhint("Make _raw bytea, drop the column, or set the source option \"raw\": \"drop\".")));
}

/* See security.h. */
bytea *
SecurityRawValue(SecurityPii *pii, const char *payload, int len)
{
	if (pii == NULL || pii->raw == SECURITY_RAW_CLEAR)
		return ByteaCopy(payload, len);
	if (pii->raw == SECURITY_RAW_DROP)
		return NULL;
	return SecurityEncrypt(payload, len);
}

/* See security.h. */
bytea *
SecurityQuarantineValue(SecurityPii *pii, const char *payload, int len,
						bool *encrypted)
{
	*encrypted = !(pii == NULL || pii->raw == SECURITY_RAW_CLEAR);
	if (!*encrypted)
		return ByteaCopy(payload, len);
	return SecurityEncrypt(payload, len);
}

/* See security.h. */
char *
SecurityTruncateIp(const char *value)
{
	unsigned char addr[sizeof(struct in6_addr)];
	char		out[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, value, addr) == 1)
	{
		addr[3] = 0;
		if (inet_ntop(AF_INET, addr, out, sizeof(out)) == NULL)
			return NULL;
		return pstrdup(out);
	}
	if (inet_pton(AF_INET6, value, addr) == 1)
	{
		memset(addr + 6, 0, sizeof(addr) - 6);
		if (inet_ntop(AF_INET6, addr, out, sizeof(out)) == NULL)
			return NULL;
		return pstrdup(out);
	}
	return NULL;
}

/*
 * camperso.check_pii_options(options jsonb) RETURNS void: raises the error
 * a source with these options would raise; used by the sources trigger so
 * that a bad option is refused when the source is made, not at ingest.
 */
Datum
camperso_check_pii_options(PG_FUNCTION_ARGS)
{
	(void) SecurityPiiCompile(PG_GETARG_JSONB_P(0));
	PG_RETURN_VOID();
}

/*
 * Trigger function on camperso.sources (BEFORE INSERT OR UPDATE): refuses a
 * source whose pii/raw options are invalid, so the mistake surfaces when the
 * source is made rather than as failing batches.
 */
Datum
camperso_sources_check_pii(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	int			attnum;
	bool		isnull;
	Datum		options;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("camperso_sources_check_pii() must be a BEFORE ROW trigger")));
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	attnum = SPI_fnumber(RelationGetDescr(trigdata->tg_relation), "options");
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("relation \"%s\" has no column \"options\"",
						RelationGetRelationName(trigdata->tg_relation))));
	options = SPI_getbinval(tuple, RelationGetDescr(trigdata->tg_relation), attnum, &isnull);
	if (!isnull)
		(void) SecurityPiiCompile(DatumGetJsonbP(options));
	return PointerGetDatum(tuple);
}

/*
 * camperso.truncate_ip(ip text) RETURNS text: the /24 network address of an
 * IPv4 address (/48 for IPv6); NULL when the value is not an IP address.
 */
Datum
camperso_truncate_ip(PG_FUNCTION_ARGS)
{
	char	   *value = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *out = SecurityTruncateIp(value);

	if (out == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * camperso.mask_email(email text) RETURNS text: keeps the first character of
 * the local part and the domain ("a***@example.com"); a value without "@"
 * becomes "***".
 */
Datum
camperso_mask_email(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	const char *at = NULL;
	int			first;
	StringInfoData buf;
	int			i;

	for (i = len - 1; i >= 0; i--)
	{
		if (s[i] == '@')
		{
			at = s + i;
			break;
		}
	}
	initStringInfo(&buf);
	if (at == NULL || at == s)
	{
		appendStringInfoString(&buf, "***");
		if (at != NULL)
			appendBinaryStringInfo(&buf, at, len - (at - s));
		PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
	}
	first = pg_mblen(s);
	appendBinaryStringInfo(&buf, s, Min(first, at - s));
	appendStringInfoString(&buf, "***");
	appendBinaryStringInfo(&buf, at, len - (at - s));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}
