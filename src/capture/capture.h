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

/* launcher.c: supervision of the source workers */
extern void CaptureRegisterLauncher(void);
extern void CaptureShmemInit(void);
extern PGDLLEXPORT void CampersoLauncherMain(Datum main_arg);

/*
 * What the launcher hands a source worker in bgw_extra: the database, the
 * source, which of its workers this is and the registry slot it fills.
 */
typedef struct CaptureWorkerArgs
{
	Oid			database;
	int32		slot;
	uint32		generation;
	int32		index;
	char		source[NAMEDATALEN];
} CaptureWorkerArgs;

extern bool CaptureSlotClaim(int slot, uint32 generation, const char *source);
extern void CaptureSlotRelease(int slot, uint32 generation);

/* worker.c: one Kafka source worker */
extern PGDLLEXPORT void CampersoSourceWorkerMain(Datum main_arg);

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

/*
 * A message the land path wrote to camperso.quarantine, as CaptureLandBatch
 * hands it back on request (for a source's dead-letter topic): the message
 * (the caller's own), the id of its quarantine row and why.
 */
typedef struct CaptureQuarantined
{
	const CaptureRawMessage *msg;
	int64		id;				/* camperso.quarantine.id */
	char	   *rule;
	char	   *field;			/* NULL when no field is at fault */
	char	   *reason;
	/*
	 * The payload and key as the quarantine row holds them: the message's
	 * own bytes, or for a source with pii fields an envelope and the key's
	 * pseudonym (or no key), so that no copy of it carries PII in clear.
	 */
	const char *payload;
	int			payload_len;
	const char *key;
	int			key_len;
	bool		payload_encrypted;
} CaptureQuarantined;

/*
 * What one batch did; landed + quarantined + deduplicated = messages.
 * quarantined also counts rows a BEFORE ROW trigger of the target
 * suppressed (a validate_row trigger quarantines them itself, as rows of
 * the table); quarantine lists only the land path's own quarantine rows.
 */
typedef struct CaptureLandResult
{
	int64		messages;
	int64		landed;
	int64		quarantined;
	int64		deduplicated;
	int64		bytes;
	CaptureQuarantined *quarantine; /* when asked for, else NULL */
	int			nquarantine;
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
 * the caller rolls back the batch and retries it. Fills *result; with a
 * keep_context, also result->quarantine, allocated there (it must outlive
 * the transaction if the caller uses it after the commit).
 */
extern void CaptureLandBatch(CaptureTarget *target, CaptureRawMessage *messages,
							 int nmessages, CaptureLandResult *result,
							 MemoryContext keep_context);

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

/*
 * kafka.c: the only file that includes librdkafka. A thin layer that keeps
 * librdkafka's types out of the rest of the code; every function runs on
 * the backend thread, and the callbacks it invokes run there too (from
 * inside KafkaConsumerPoll/KafkaConsumerClose), never on librdkafka's own
 * threads.
 */
typedef struct KafkaConsumer KafkaConsumer;

/* One librdkafka property (a source's kafka.* option without the prefix). */
typedef struct KafkaSetting
{
	const char *name;
	const char *value;
} KafkaSetting;

/* Start where the group committed in Kafka, else per auto.offset.reset. */
#define KAFKA_OFFSET_DEFAULT	(-1001)
/* Room for the metadata camperso commits with an offset. */
#define KAFKA_METADATA_LEN		64

typedef struct KafkaCallbacks
{
	void	   *arg;
	/* Partitions assigned: set offsets[i] to where each starts. */
	void		(*assign) (void *arg, int n, const int32 *partitions, int64 *offsets);
	/*
	 * Partitions revoked (n = -1: every assigned partition). For listed
	 * partitions, set offsets[i] to the next offset committed in PostgreSQL
	 * (or -1) and metadata[i] to its commit metadata: they are committed to
	 * Kafka before the partitions move, so a consumer of another server
	 * taking one over starts right there.
	 */
	void		(*revoke) (void *arg, int n, const int32 *partitions, int64 *offsets,
						   char (*metadata)[KAFKA_METADATA_LEN]);
	/* A client-level error (broker down, unknown topic...). */
	void		(*error) (void *arg, const char *text);
	/* Every broker is unreachable (after error has been called). */
	void		(*all_brokers_down) (void *arg);
} KafkaCallbacks;

extern bool KafkaCheckProperty(const char *name, const char *value,
							   char *errbuf, size_t errlen);
extern KafkaConsumer *KafkaConsumerOpen(const char *brokers, const char *topic,
										const char *group_id, const char *client_id,
										const KafkaSetting *settings, int nsettings,
										const KafkaCallbacks *callbacks);
extern int	KafkaConsumerPoll(KafkaConsumer *kc, int timeout_ms,
							  CaptureRawMessage *msg, TimestampTz *produced_at);
extern void KafkaConsumerSeek(KafkaConsumer *kc, int n, const int32 *partitions,
							  const int64 *offsets);
extern void KafkaConsumerCommit(KafkaConsumer *kc, int n, const int32 *partitions,
								const int64 *next_offsets,
								char (*metadata)[KAFKA_METADATA_LEN]);
extern void KafkaConsumerCommitted(KafkaConsumer *kc, int n, const int32 *partitions,
								   int64 *offsets, char (*metadata)[KAFKA_METADATA_LEN]);
extern int64 KafkaConsumerHighWatermark(KafkaConsumer *kc, int32 partition);
extern int64 KafkaConsumerQueryHighWatermark(KafkaConsumer *kc, int32 partition, int timeout_ms);
extern bool KafkaConsumerProbe(KafkaConsumer *kc, int timeout_ms);
extern void KafkaConsumerClose(KafkaConsumer *kc, int timeout_ms);

/*
 * The producer of a source worker's dead-letter topic. Never blocks on
 * send; outcomes are read with KafkaProducerServe, on the backend thread.
 */
typedef struct KafkaProducer KafkaProducer;

typedef struct KafkaHeader
{
	const char *name;
	const char *value;
	int			value_len;
} KafkaHeader;

/* What a producer reported since the caller zeroed it. */
typedef struct KafkaDeliveries
{
	int64		delivered;
	int64		failed;
	int64		failed_opaque;	/* opaque of the last failed message */
	char		delivery_error[256];	/* reason of the last failure */
	int64		client_errors;
	char		client_error[256];	/* text of the last client-level error */
	int			pending;		/* messages neither delivered nor failed yet */
} KafkaDeliveries;

extern KafkaProducer *KafkaProducerOpen(const char *brokers, const char *topic,
										const char *client_id,
										const KafkaSetting *settings, int nsettings);
extern bool KafkaProducerSend(KafkaProducer *kp, const char *payload, int len,
							  const char *key, int key_len,
							  const KafkaHeader *headers, int nheaders, int64 opaque,
							  char *errbuf, size_t errlen);
extern void KafkaProducerServe(KafkaProducer *kp, int timeout_ms, KafkaDeliveries *out);
extern void KafkaProducerClose(KafkaProducer *kp, int timeout_ms, KafkaDeliveries *out);

extern int	KafkaQueryOffsets(const char *brokers, const char *topic,
							  const KafkaSetting *settings, int nsettings,
							  int32 partition, bool earliest,
							  int32 **partitions, int64 **offsets);

/*
 * dlq.c: a source worker's dead-letter topic. After a batch commits, every
 * message it quarantined is produced to the source's dlq_topic with
 * headers saying why; outcomes are counted in camperso.stat_sources. A
 * failure there never stops or slows the consume loop beyond a bounded
 * amount, and never touches what landed.
 */
struct SourceStatsEntry;
extern void CaptureDlqOpen(const char *source, const char *brokers, const char *topic,
						   const char *dlq_topic, const char *client_id,
						   const KafkaSetting *settings, int nsettings,
						   struct SourceStatsEntry *stats);
extern void CaptureDlqSend(const CaptureQuarantined *rows, int nrows);
extern void CaptureDlqServe(void);
extern void CaptureDlqClose(void);

#endif							/* CAMPERSO_CAPTURE_H */
