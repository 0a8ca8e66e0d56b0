/*-------------------------------------------------------------------------
 *
 * capture.h
 *	  Capture stage: the launcher, the Kafka source workers, and the decode
 *	  and land path they share with camperso.ingest().
 *
 * The split: the worker (worker.c, the only file that includes librdkafka)
 * polls Kafka, collects a batch of CaptureRawMessage, opens a transaction
 * and hands the batch to CaptureLandBatch (land.c), which decodes each
 * message (decode.c), quarantines what cannot be landed and multi-inserts
 * the rest into the target. The worker then stores the offsets in the same
 * transaction and commits. camperso.ingest()/ingest_batch() call the same
 * CaptureLandBatch with partition/offset -1.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_CAPTURE_H
#define CAMPERSO_CAPTURE_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "core/message.h"

/* launcher.c */
extern void CaptureRegisterLauncher(void);
extern PGDLLEXPORT void CampersoLauncherMain(Datum main_arg);

/* A message as it arrives, before decoding; bytes live in the batch context. */
typedef struct CaptureRawMessage
{
	const char *payload;
	int			payload_len;
	const char *key;			/* NULL when the message has no key */
	int			key_len;
	int32		partition;		/* -1 outside Kafka */
	int64		offset;			/* -1 outside Kafka */
	TimestampTz received_at;
} CaptureRawMessage;

/* What one batch did; landed + quarantined + deduplicated = messages. */
typedef struct CaptureLandResult
{
	int64		messages;
	int64		landed;
	int64		quarantined;
	int64		deduplicated;
	int64		bytes;
} CaptureLandResult;

/*
 * Everything needed to land a source's messages, read from camperso.sources
 * and the target's tuple descriptor. Opaque outside land.c/decode.c.
 */
typedef struct CaptureTarget CaptureTarget;

/*
 * Builds the landing description of source "source_name". Must be called in
 * a transaction; the result lives in the current memory context and is
 * valid for that transaction only (the table may change between batches).
 */
extern CaptureTarget *CaptureTargetOpen(const char *source_name);

/*
 * Decodes and lands a batch in the current transaction: good rows go to the
 * target (heap multi-insert), undecodable or invalid ones to
 * camperso.quarantine with their reason. Errors that are not a message's
 * fault (table gone, permission denied, disk full) are raised as ERROR, so
 * the caller rolls back the batch and retries it. Fills *result.
 */
extern void CaptureLandBatch(CaptureTarget *target, CaptureRawMessage *messages,
							 int nmessages, CaptureLandResult *result);

/*
 * Parses one JSON object into msg (decode.c). Returns true on success; on
 * failure returns false and sets *rule (a short code such as malformed_json,
 * invalid_utf8, not_an_object, nul_byte, too_deep, oversized) and *reason.
 */
extern bool CaptureJsonParse(const char *data, int len, CampersoMessage *msg,
							 const char **rule, char **reason);

/*
 * Decode limits. Messages above CAPTURE_HARD_MAX_BYTES are oversized
 * whatever the source's max_message_bytes (default
 * CAPTURE_DEFAULT_MAX_MESSAGE_BYTES) says: jsonb cannot hold much more, and
 * a batch must fit its memory context. Nesting deeper than
 * CAPTURE_MAX_DEPTH is too_deep: PostgreSQL's own JSON parsers recurse,
 * so the limit keeps them far from the stack limit.
 */
#define CAPTURE_HARD_MAX_BYTES				(64 * 1024 * 1024)
#define CAPTURE_DEFAULT_MAX_MESSAGE_BYTES	(1024 * 1024)
#define CAPTURE_MAX_DEPTH					512

/* CaptureJsonParse that also names the top-level key at fault (or NULL). */
extern bool CaptureJsonParseField(const char *data, int len, CampersoMessage *msg,
								  const char **rule, char **reason,
								  const char **field);

/* A compiled path of the `mapping` option: $.a.b[0] */
typedef struct CaptureJsonPathStep
{
	const char *key;			/* NULL for an array index */
	int			index;
} CaptureJsonPathStep;

typedef struct CaptureJsonPath
{
	int			nsteps;
	CaptureJsonPathStep *steps;
} CaptureJsonPath;

extern CaptureJsonPath *CaptureJsonPathCompile(const char *path, char **error);
extern bool CaptureJsonPathLookup(CampersoMessage *msg, const CaptureJsonPath *path,
								  CampersoField *out);

#endif							/* CAMPERSO_CAPTURE_H */
