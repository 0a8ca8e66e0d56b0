/*-------------------------------------------------------------------------
 *
 * land_internal.h
 *	  Private to the land path (land.c, convert.c, route.c, quarantine.c):
 *	  the description of a target that CaptureTargetOpen builds, and the
 *	  converters from a decoded JSON value to a column's type.
 *
 * Nothing here is for other stages: they use capture.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_LAND_INTERNAL_H
#define CAMPERSO_LAND_INTERNAL_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/execnodes.h"
#include "utils/relcache.h"

#include "capture/capture.h"

/* How a column gets its value. */
typedef enum CaptureColKind
{
	CK_SKIP,					/* dropped, generated, or GENERATED ALWAYS
								 * identity: never taken from the message */
	/* metadata, filled by capture when the table has the column */
	CK_META_PARTITION,
	CK_META_OFFSET,
	CK_META_KEY,
	CK_META_RECEIVED_AT,
	CK_META_RAW,
	/* converters that cannot throw on message content (convert.c) */
	CK_TEXT,
	CK_VARCHAR,
	CK_INT2,
	CK_INT4,
	CK_INT8,
	CK_NUMERIC,
	CK_FLOAT4,
	CK_FLOAT8,
	CK_BOOL,
	CK_UUID,
	CK_TIMESTAMPTZ,
	CK_TIMESTAMP,
	CK_DATE,
	CK_JSON,
	CK_JSONB,
	CK_BYTEA,
	CK_INET,
	/* anything else: the type's input function in a subtransaction */
	CK_GENERIC
} CaptureColKind;

typedef struct CaptureColumn
{
	AttrNumber	attnum;
	char	   *name;
	Oid			typid;
	int32		typmod;
	CaptureColKind kind;
	CaptureJsonPath *path;		/* from the mapping option; NULL: key = name */
	Expr	   *defexpr;		/* default for an absent key, NULL: none */
	ExprState  *defstate;		/* defexpr prepared for the current batch */
	int			maxlen;			/* varchar(n): n, else -1 */
	Datum		numeric_bound;	/* numeric(p,s): 10^(p-s), else 0 */
	FmgrInfo	infunc;			/* CK_GENERIC */
	Oid			ioparam;
	bool		is_domain;
	bool		convert_in_place;	/* CaptureConvert allocates only the
									 * value it returns */
} CaptureColumn;

struct CaptureTarget
{
	char	   *source;
	char	   *topic;
	char	   *ruleset;
	Oid			relid;
	char	   *relname;		/* schema-qualified, quoted as needed */
	char		relkind;
	int			natts;
	CaptureColumn *cols;		/* one per attribute, by attnum - 1 */
	int			nkeyed;			/* columns filled from a top-level key */
	int			hashsize;		/* power of two */
	int16	   *hash;			/* key name -> index into cols, -1 empty */
	int			max_message_bytes;
	bool		has_meta;
	bool		has_defaults;
	bool		has_generic;
	Oid			ensure_partition_fn;	/* camperso.ensure_partition, or 0 */
	struct SecurityPii *pii;	/* pii/raw options (security.h), NULL: clear */
};

/* target.c */
extern int	CaptureTargetColumnForKey(CaptureTarget *t, const char *name, int len);

/* convert.c */

/* What a conversion failure looks like: rule and a human sentence. */
typedef struct CaptureFault
{
	const char *rule;
	const char *field;
	char	   *reason;
} CaptureFault;

extern void CaptureColumnPrepare(CaptureColumn *col, Form_pg_attribute att);
extern bool CaptureConvert(CaptureColumn *col, CampersoField *f,
						   Datum *value, bool *isnull, CaptureFault *fault);
extern const char *CaptureRuleForSqlState(int sqlerrcode);

/* route.c */
typedef struct CaptureRouteState CaptureRouteState;
extern CaptureRouteState *CaptureRouteBegin(Relation rel, EState *estate);
extern bool CaptureRouteCheck(CaptureRouteState *rs, Datum *values, bool *nulls,
							  Oid *missing_parent, char **missing_value);
extern void CaptureRouteEnd(CaptureRouteState *rs);

/* quarantine.c */
typedef struct CaptureQuarantineRow
{
	const CaptureRawMessage *msg;
	const char *ruleset;		/* the ruleset whose rule it broke, or NULL */
	const char *rule;
	const char *field;
	char	   *reason;
	char	   *app_id;
	int64		id;				/* set by CaptureQuarantineInsert */
	/* set by CaptureQuarantineInsert: what the row holds, for the DLQ copy */
	const char *stored_payload;
	int			stored_payload_len;
	const char *stored_key;		/* NULL: no key, or the key was dropped */
	int			stored_key_len;
	bool		stored_encrypted;	/* stored_payload is an envelope */
} CaptureQuarantineRow;

extern void CaptureQuarantineInsert(CaptureTarget *target, CaptureQuarantineRow *rows,
									int nrows);

#endif							/* CAMPERSO_LAND_INTERNAL_H */
