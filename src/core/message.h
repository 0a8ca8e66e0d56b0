/*-------------------------------------------------------------------------
 *
 * message.h
 *	  The decoded form of one JSON message, shared by every stage that looks
 *	  inside a message: capture decodes into it, security rewrites PII fields
 *	  in it, validation checks rules against it, the trigger and
 *	  camperso.validate() build it from a row or a jsonb.
 *
 * Only top-level keys are split out; nested objects and arrays stay as their
 * raw JSON text. All pointers point into memory owned by the caller (the
 * batch or row memory context), so a message costs no copies beyond the
 * unescaped strings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_MESSAGE_H
#define CAMPERSO_MESSAGE_H

#include "postgres.h"
#include "datatype/timestamp.h"

typedef enum CampersoJsonKind
{
	CJ_NULL,
	CJ_STRING,
	CJ_NUMBER,
	CJ_BOOL,
	CJ_OBJECT,
	CJ_ARRAY
} CampersoJsonKind;

/* One top-level field of a JSON object. */
typedef struct CampersoField
{
	const char *name;			/* key, unescaped, NUL-terminated */
	int			name_len;
	CampersoJsonKind kind;

	/*
	 * CJ_STRING: the unescaped UTF-8 value, NUL-terminated (a string holding
	 * \u0000 is a decode error, as in jsonb). CJ_NUMBER: the literal as
	 * written. CJ_BOOL: "true" or "false". CJ_OBJECT / CJ_ARRAY: the raw
	 * JSON text of the value. CJ_NULL: NULL.
	 */
	const char *text;
	int			text_len;
} CampersoField;

/* One message: its bytes as received, where it came from, its fields. */
typedef struct CampersoMessage
{
	const char *payload;		/* exactly as received */
	int			payload_len;
	const char *key;			/* Kafka key, NULL when none */
	int			key_len;
	int32		partition;		/* -1 when not from Kafka */
	int64		offset;			/* -1 when not from Kafka */
	TimestampTz received_at;

	int			nfields;
	CampersoField *fields;		/* top-level keys in document order */
} CampersoMessage;

/* Looks up a top-level field by name; NULL when absent. */
extern CampersoField *CampersoMessageField(CampersoMessage *msg, const char *name);

#endif							/* CAMPERSO_MESSAGE_H */
