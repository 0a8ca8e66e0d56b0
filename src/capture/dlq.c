/*-------------------------------------------------------------------------
 *
 * dlq.c
 *	  The dead-letter topic of a source worker: when the source has the
 *	  option dlq_topic, every message the land path quarantined is also
 *	  produced there, byte-exact with its original key (for a source with
 *	  pii fields, see below), with headers saying why, in the manner of
 *	  Kafka Connect's errors.deadletterqueue:
 *
 *		__camperso.errors.source		the source's name
 *		__camperso.errors.topic			topic the message was consumed from
 *		__camperso.errors.partition		its partition (decimal)
 *		__camperso.errors.offset		its offset (decimal)
 *		__camperso.errors.rule			the rule broken (quarantine.rule)
 *		__camperso.errors.field			the field at fault, when there is one
 *		__camperso.errors.reason		the reason (quarantine.reason)
 *		__camperso.errors.quarantine_id	the id of its camperso.quarantine row
 *		__camperso.errors.payload_encrypted	"true" when the payload is an
 *										envelope (see below)
 *
 * For a source with pii fields the copy is what the quarantine row holds,
 * not the message: the payload as an envelope (camperso.decrypt() gives the
 * message back; "raw": "clear" keeps it clear) and the key pseudonymised or
 * dropped as the "_key" field says, so the topic never carries the PII that
 * the tables are kept free of.
 *
 * camperso.quarantine is the record; the topic is a best-effort copy. A
 * message is produced only after the transaction that wrote its quarantine
 * row committed (a rolled-back batch is landed again and would otherwise
 * be copied twice), by a producer of the worker's own (kafka.c) that never
 * blocks: its local queue is bounded, a message it cannot take is counted
 * failed at once, and librdkafka retries the rest for message.timeout.ms.
 * So an outage of the topic (brokers down, topic refused, queue full)
 * costs the consume loop nothing beyond copying the bytes, and loses
 * nothing that landed. Copies are at-least-once while the worker runs (a
 * retry may duplicate one); those in flight when it stops get
 * DLQ_CLOSE_MS, and a crash loses them: their quarantine rows remain.
 *
 * Outcomes go to the source's row of camperso.stat_sources (dlq_produced,
 * dlq_failed, dlq_last_error, dlq_last_error_at) and failures to the
 * server log, at most one line per DLQ_LOG_MS.
 *
 * Everything here runs on the worker's backend thread; librdkafka stays
 * behind kafka.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "capture/capture.h"
#include "observe/observe.h"

/* How long a stopping worker waits for copies in flight. */
#define DLQ_CLOSE_MS	2000
/* Shortest interval between two log lines about failed copies. */
#define DLQ_LOG_MS		10000

#define DLQ_MAX_HEADERS 9

typedef struct DlqState
{
	bool		configured;		/* the source has a dlq_topic */
	KafkaProducer *producer;	/* NULL: configured, but could not start */
	char	   *source;
	char	   *topic;
	char	   *dlq_topic;
	char		unavailable[256];	/* why there is no producer */
	SourceStatsEntry *stats;
	int64		unlogged;		/* failures since the last log line */
	int64		last_failed_id;
	char		last_reason[256];
	TimestampTz last_log;
} DlqState;

static DlqState dlq;

/* Counts failures with their reason; logs them at most every DLQ_LOG_MS. */
static void
DlqFailed(int64 n, int64 quarantine_id, const char *reason, bool final)
{
	char		text[512];

	if (n > 0)
	{
		SourceStatsCountDlq(dlq.stats, 0, n);
		dlq.unlogged += n;
		dlq.last_failed_id = quarantine_id;
		strlcpy(dlq.last_reason, reason, sizeof(dlq.last_reason));
		snprintf(text, sizeof(text), "dead-letter topic \"%s\": quarantine id " INT64_FORMAT ": %s",
				 dlq.dlq_topic, quarantine_id, reason);
		SourceStatsDlqError(dlq.stats, text);
	}
	if (dlq.unlogged == 0 ||
		(!final && !TimestampDifferenceExceeds(dlq.last_log, GetCurrentTimestamp(), DLQ_LOG_MS)))
		return;
	ereport(LOG,
			(errmsg("camperso source \"%s\": " INT64_FORMAT " quarantined message(s) could not be copied to dead-letter topic \"%s\"",
					dlq.source, dlq.unlogged, dlq.dlq_topic),
			 errdetail("Last failure: quarantine id " INT64_FORMAT ": %s",
					   dlq.last_failed_id, dlq.last_reason),
			 errhint("The messages stay in camperso.quarantine; consumption goes on.")));
	dlq.unlogged = 0;
	dlq.last_log = GetCurrentTimestamp();
}

/* Accounts for what the producer reported. */
static void
DlqAccount(KafkaDeliveries *d, bool final)
{
	SourceStatsCountDlq(dlq.stats, d->delivered, 0);
	if (d->client_errors > 0)
	{
		char		text[512];

		snprintf(text, sizeof(text), "dead-letter topic \"%s\": %s",
				 dlq.dlq_topic, d->client_error);
		SourceStatsDlqError(dlq.stats, text);
	}
	DlqFailed(d->failed, d->failed_opaque, d->delivery_error, final);
}

/*
 * Starts the dead-letter producer of a source worker, if the source has a
 * dlq_topic. Never raises: a producer that cannot start is reported and
 * every copy is then counted failed; the worker consumes on.
 */
void
CaptureDlqOpen(const char *source, const char *brokers, const char *topic,
			   const char *dlq_topic, const char *client_id,
			   const KafkaSetting *settings, int nsettings,
			   SourceStatsEntry *stats)
{
	MemoryContext context = CurrentMemoryContext;

	memset(&dlq, 0, sizeof(dlq));
	if (dlq_topic == NULL)
		return;
	dlq.configured = true;
	dlq.source = MemoryContextStrdup(TopMemoryContext, source);
	dlq.topic = MemoryContextStrdup(TopMemoryContext, topic);
	dlq.dlq_topic = MemoryContextStrdup(TopMemoryContext, dlq_topic);
	dlq.stats = stats;

	/* create_source refuses it; a row written by hand may still say so */
	if (strcmp(dlq_topic, topic) == 0)
	{
		strlcpy(dlq.unavailable, "it is the source's own topic, whose messages would come back forever",
				sizeof(dlq.unavailable));
		ereport(LOG,
				(errmsg("camperso source \"%s\": dead-letter topic \"%s\" not used: %s",
						source, dlq_topic, dlq.unavailable)));
		return;
	}

	PG_TRY();
	{
		dlq.producer = KafkaProducerOpen(brokers, dlq_topic, client_id, settings, nsettings);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		FlushErrorState();
		snprintf(dlq.unavailable, sizeof(dlq.unavailable), "%s%s%s", edata->message,
				 edata->detail ? ": " : "", edata->detail ? edata->detail : "");
		ereport(LOG,
				(errmsg("camperso source \"%s\": dead-letter topic \"%s\" not available: %s",
						source, dlq_topic, dlq.unavailable)));
		FreeErrorData(edata);
		dlq.producer = NULL;
	}
	PG_END_TRY();
	if (dlq.producer == NULL)
		SourceStatsDlqError(stats, dlq.unavailable);
}

/*
 * Produces the quarantined messages of a committed batch to the
 * dead-letter topic, if the source has one; never blocks.
 */
void
CaptureDlqSend(const CaptureQuarantined *rows, int nrows)
{
	int			i;

	if (!dlq.configured || nrows <= 0)
		return;
	if (dlq.producer == NULL)
	{
		DlqFailed(nrows, rows[nrows - 1].id, dlq.unavailable, false);
		return;
	}

	for (i = 0; i < nrows; i++)
	{
		const CaptureQuarantined *q = &rows[i];
		const CaptureRawMessage *m = q->msg;
		KafkaHeader headers[DLQ_MAX_HEADERS];
		char		partition[16];
		char		offset[24];
		char		id[24];
		char		errbuf[256];
		int			nh = 0;

		snprintf(partition, sizeof(partition), "%d", m->partition);
		snprintf(offset, sizeof(offset), INT64_FORMAT, m->offset);
		snprintf(id, sizeof(id), INT64_FORMAT, q->id);
#define HEADER(n, v) \
		do { \
			headers[nh].name = "__camperso.errors." n; \
			headers[nh].value = (v); \
			headers[nh].value_len = strlen(v); \
			nh++; \
		} while (0)
		HEADER("source", dlq.source);
		HEADER("topic", dlq.topic);
		HEADER("partition", partition);
		HEADER("offset", offset);
		HEADER("rule", q->rule);
		if (q->field)
			HEADER("field", q->field);
		HEADER("reason", q->reason);
		HEADER("quarantine_id", id);
		if (q->payload_encrypted)
			HEADER("payload_encrypted", "true");
#undef HEADER
		Assert(nh <= DLQ_MAX_HEADERS);

		if (!KafkaProducerSend(dlq.producer, q->payload, q->payload_len,
							   q->key, q->key_len, headers, nh, q->id,
							   errbuf, sizeof(errbuf)))
			DlqFailed(1, q->id, errbuf, false);
	}
	CaptureDlqServe();
}

/* Takes the producer's delivery reports without waiting; every loop. */
void
CaptureDlqServe(void)
{
	KafkaDeliveries d;

	if (dlq.producer == NULL)
		return;
	memset(&d, 0, sizeof(d));
	KafkaProducerServe(dlq.producer, 0, &d);
	DlqAccount(&d, false);
}

/*
 * Waits at most DLQ_CLOSE_MS for the copies in flight, counts the rest
 * failed and stops the producer. Safe in a shmem-exit callback.
 */
void
CaptureDlqClose(void)
{
	KafkaDeliveries d;
	KafkaProducer *kp = dlq.producer;

	if (kp == NULL)
		return;
	dlq.producer = NULL;
	memset(&d, 0, sizeof(d));
	KafkaProducerClose(kp, DLQ_CLOSE_MS, &d);
	if (d.pending > 0)
	{
		d.failed += d.pending;
		snprintf(d.delivery_error, sizeof(d.delivery_error),
				 "%d cop%s still in flight when the worker stopped",
				 d.pending, d.pending == 1 ? "y" : "ies");
	}
	DlqAccount(&d, true);
}
