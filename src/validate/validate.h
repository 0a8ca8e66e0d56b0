/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Audit & validate stage: the rules engine shared by the three ways in
 *	  (the capture land path, the validate_row() trigger and
 *	  camperso.validate()), deduplication, schema drift and the quarantine.
 *
 * The public part (first half) is what other stages call:
 *
 *	  rs = ValidateGetRuleset("clickstream");	-- cached, compiled once
 *	  switch (ValidateMessage(rs, &msg, &failure))
 *		VALIDATE_VALID      land it
 *		VALIDATE_INVALID    quarantine it with failure.rule/field/reason
 *		VALIDATE_DUPLICATE  count it as deduplicated; neither land nor
 *		                    quarantine it
 *
 * A ruleset pointer stays valid until the end of the transaction that got
 * it; get it again in the next one (the lookup is a hash probe). Everything
 * here must be called inside a transaction.
 *
 * The second half declares what the files of src/validate share with each
 * other; other stages should not need it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_VALIDATE_H
#define CAMPERSO_VALIDATE_H

#include "postgres.h"
#include "access/xact.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "regex/regex.h"
#include "utils/uuid.h"

#include "core/message.h"

/* ----------------------------------------------------------------------
 * Public API
 * ----------------------------------------------------------------------
 */

typedef struct ValidateRuleset ValidateRuleset;

typedef enum ValidateOutcome
{
	VALIDATE_VALID,				/* every rule passed; a unique key, if any,
								 * is now recorded as seen */
	VALIDATE_INVALID,			/* a rule failed: see the ValidateFailure */
	VALIDATE_DUPLICATE			/* valid, but its unique key was already
								 * seen within the window */
} ValidateOutcome;

#define VALIDATE_REASON_LEN 256

/* The first rule a message broke. rule and field point at static strings
 * or into the ruleset, so they live as long as the ruleset. */
typedef struct ValidateFailure
{
	const char *rule;
	const char *field;			/* NULL for message-level failures */
	char		reason[VALIDATE_REASON_LEN];
} ValidateFailure;

/* Called once from _PG_init: invalidation and transaction callbacks. */
extern void ValidateInit(void);

/*
 * The compiled ruleset called name, from the per-backend cache (compiled on
 * first use and after any change to camperso.rules). Raises an error with
 * SQLSTATE CP201 when no such ruleset exists.
 */
extern ValidateRuleset *ValidateGetRuleset(const char *name);

/*
 * Checks msg against every rule of rs, stopping at the first failure.
 * Allocation-free on the common path. A message that passes every other
 * rule and carries a unique rule is checked against the keys seen within
 * the window; a new key is recorded (in memory now, in
 * camperso.dedupe_keys when the transaction commits).
 */
extern ValidateOutcome ValidateMessage(ValidateRuleset *rs, CampersoMessage *msg,
									   ValidateFailure *failure);

/*
 * Takes back the unique keys that ValidateMessage recorded for msg in this
 * transaction, for a message that passed validation but was then not
 * landed (a constraint of the target rejected it): a later copy of the
 * event must not be dropped as a duplicate of one that never landed.
 */
extern void ValidateUnrecord(ValidateRuleset *rs, CampersoMessage *msg);

/* As ValidateMessage, but records nothing: what landing msg would do. */
extern ValidateOutcome ValidateMessageCheck(ValidateRuleset *rs, CampersoMessage *msg,
											ValidateFailure *failure);

/*
 * Schema drift: records the shape (top-level key -> JSON kind) of msg for
 * source. Cheap per message (a hash over the keys and a cache probe); new
 * shapes and counts are written to camperso.schema_versions when the
 * transaction commits.
 */
extern void ValidateObserveShape(const char *source, CampersoMessage *msg);

/*
 * Inserts one row into camperso.quarantine as the extension owner (the
 * caller needs no privilege on it). NULL strings, partition/offset < 0 and
 * received_at 0 become NULLs or defaults; payload is stored byte for byte.
 */
extern void ValidateQuarantineInsert(const char *source, const char *target,
									 const char *topic, int32 partition, int64 offset,
									 const char *key, int key_len, TimestampTz received_at,
									 const char *payload, int payload_len,
									 const char *ruleset, const char *rule,
									 const char *field, const char *reason,
									 const char *app_id);

/* ----------------------------------------------------------------------
 * Internal to src/validate
 * ----------------------------------------------------------------------
 */

typedef enum ValidateRuleKind
{
	VR_REQUIRED,
	VR_TYPE,
	VR_REGEX,
	VR_IN,
	VR_RANGE,
	VR_MAX_LENGTH,
	VR_NOT_FUTURE,
	VR_MAX_AGE,
	VR_UNIQUE
} ValidateRuleKind;

typedef enum ValidateType
{
	VT_UUID,
	VT_INT,
	VT_BIGINT,
	VT_NUMERIC,
	VT_BOOL,
	VT_TIMESTAMPTZ,
	VT_TEXT,
	VT_OBJECT,
	VT_ARRAY
} ValidateType;

/* A bound of a range rule: a number, or a timestamp for time fields. */
typedef struct ValidateBound
{
	bool		present;
	bool		is_time;
	bool		is_int;
	int64		i;
	double		d;
	TimestampTz ts;
	char	   *text;			/* as written, for reasons */
} ValidateBound;

/* One member of an "in" set. */
typedef struct ValidateInItem
{
	CampersoJsonKind kind;		/* CJ_STRING, CJ_NUMBER or CJ_BOOL */
	const char *text;
	int			len;
	double		num;
} ValidateInItem;

typedef struct ValidateRule
{
	ValidateRuleKind kind;
	const char *name;			/* rule name as in camperso.rules */
	int			field;			/* index into ValidateRuleset.fields */
	int64		id;				/* camperso.rules.id */
	char	   *arg_text;		/* the argument as written, for reasons */
	union
	{
		ValidateType type;
		struct
		{
			regex_t    *re;		/* malloc'ed by pg_regcomp */
			struct ValidateRegexDfa *dfa;	/* fast path, NULL if none */
		}			regex;
		struct
		{
			int			n;
			ValidateInItem *items;
		}			in;
		struct
		{
			ValidateBound min;
			ValidateBound max;
		}			range;
		int64		max_length;
		int64		usecs;		/* not_future tolerance, max_age lateness,
								 * unique window */
	}			u;
	struct ValidateDedupeScope *scope;	/* unique: its seen-keys state */
} ValidateRule;

struct ValidateRuleset
{
	char	   *name;
	MemoryContext cxt;			/* holds everything below */
	uint64		generation;		/* cache generation it was built in */
	int			nfields;
	char	  **fields;			/* distinct field names, rules refer by index */
	int		   *field_len;
	int			nrules;
	ValidateRule *rules;		/* required, then type, then the others, each
								 * group in id order; unique rules last */
	struct ValidateValue *scratch;	/* nfields values for ValidateMessage */
};

/*
 * A field's value as the rules see it. text/len is the JSON text (string
 * unescaped, number literal, "true"/"false", raw object or array) and may be
 * NULL when the value came typed (trigger path) and no rule needs the text;
 * typed forms are filled by whoever builds the value when they come free,
 * or parsed from text on first need and remembered.
 */
#define VV_HAVE_UUID	0x01
#define VV_HAVE_INT		0x02
#define VV_HAVE_DBL		0x04
#define VV_HAVE_TS		0x08
#define VV_BAD_UUID		0x10
#define VV_BAD_INT		0x20
#define VV_BAD_DBL		0x40
#define VV_BAD_TS		0x80

typedef struct ValidateValue
{
	bool		present;		/* key present (or column not NULL) */
	CampersoJsonKind kind;
	const char *text;
	int			len;
	uint16		flags;
	int64		i;
	double		d;
	TimestampTz ts;
	pg_uuid_t	uuid;
} ValidateValue;

typedef enum ValidateMode
{
	VM_LAND,					/* first failure; record unique keys */
	VM_CHECK,					/* first failure; record nothing */
	VM_ALL						/* every failure through a callback; record
								 * nothing */
} ValidateMode;

typedef void (*ValidateReportFn) (void *arg, const ValidateFailure *failure);

/* rules.c */
extern uint64 ValidateCacheGeneration(void);
extern void ValidateCompileRule(ValidateRuleset *rs, ValidateRule *rule,
								const char *rule_name, Datum arg, bool arg_null);
extern Oid	ValidateCatalogOwner(void);
extern void ValidateSwitchToOwner(Oid *save_userid, int *save_sec_context);
extern void ValidateRestoreUser(Oid save_userid, int save_sec_context);

typedef struct ValidateSpi
{
	Oid			save_userid;
	int			save_sec;
	bool		pushed_snapshot;
	MemoryContext caller_cxt;	/* for results that outlive SPI_finish */
} ValidateSpi;
extern void ValidateSpiBegin(ValidateSpi *spi);
extern void ValidateSpiEnd(ValidateSpi *spi);
extern SPIPlanPtr ValidatePrepare(SPIPlanPtr *cache, const char *sql, int nargs,
								  Oid *argtypes);

/* engine.c */
extern ValidateOutcome ValidateRun(ValidateRuleset *rs, ValidateValue *values,
								   const bool *skip, ValidateMode mode,
								   ValidateFailure *failure,
								   ValidateReportFn report, void *report_arg);
extern void ValidateValuesFromMessage(ValidateRuleset *rs, CampersoMessage *msg,
									  ValidateValue *values);
extern bool ValidateParseUuid(const char *s, int len, pg_uuid_t *out);
extern bool ValidateParseTimestamp(const char *s, int len, TimestampTz *out);
extern bool ValidateParseInt64(const char *s, int len, int64 *out);
extern void ValidateUuidToText(const pg_uuid_t *u, char *buf);

/* regex_dfa.c */
typedef struct ValidateRegexDfa ValidateRegexDfa;
extern ValidateRegexDfa *ValidateRegexDfaCompile(const char *pattern, int len, Oid collation);
extern int	ValidateRegexDfaMatch(ValidateRegexDfa *dfa, const char *s, int len);

/* dedupe.c */
typedef struct ValidateDedupeScope ValidateDedupeScope;
extern ValidateDedupeScope *ValidateDedupeGetScope(const char *ruleset, const char *field);
extern bool ValidateDedupeSeen(ValidateDedupeScope *scope, ValidateValue *value,
							   int64 window_usecs, bool record, TimestampTz now,
							   TimestampTz *seen_at);
extern void ValidateDedupeUnrecord(ValidateDedupeScope *scope, ValidateValue *value);
extern void ValidateDedupePrefetch(ValidateDedupeScope *scope, ValidateValue *value);
extern void ValidateDedupeXactCallback(XactEvent event);
extern void ValidateDedupeSubXactAbort(SubTransactionId subid);
extern TimestampTz ValidateClockNow(int64 *resolution);

/* trigger.c: per-transaction counts of the trigger path */
extern void ValidateCountsXactCallback(XactEvent event);
extern void ValidateCountsSubXactAbort(SubTransactionId subid);

/* drift.c */
extern void ValidateDriftXactCallback(XactEvent event);
extern void ValidateDriftSubXactAbort(SubTransactionId subid);

/*
 * Set by the capture land path while it fires a target's BEFORE ROW
 * triggers for messages it has already validated with this ruleset: a
 * camperso.validate_row() trigger for the same ruleset then passes the row
 * through instead of validating it twice (trigger.c).
 */
extern const char *ValidateLandRuleset;

/*
 * How many rows camperso.validate_row() has skipped in this backend, as
 * quarantined and as duplicates: the land path compares them around a
 * target's BEFORE ROW triggers to tell a row validate_row() accounted for
 * from one another trigger suppressed (trigger.c).
 */
extern uint64 ValidateTriggerQuarantined;
extern uint64 ValidateTriggerDeduplicated;

#endif							/* CAMPERSO_VALIDATE_H */
