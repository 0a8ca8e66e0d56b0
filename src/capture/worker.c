/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  A Kafka source worker: a dynamic background worker, started by the
 *	  launcher, that consumes one source's topic and lands it batch by batch
 *	  with exactly-once into PostgreSQL.
 *
 * The loop, worker_spi style: collect a batch (at most batch_size
 * messages, at most batch_ms after its first message), then in one
 * transaction
 *	1. fence: for each partition in the batch, move its stored offset in
 *	   camperso.source_offsets from the value this worker last saw to the
 *	   batch's next offset (compare-and-set); if another writer moved it
 *	   meanwhile (a zombie of a rebalance, reset_offsets) the batch is
 *	   rolled back, the worker re-reads the stored offsets and seeks;
 *	2. land: CaptureTargetOpen + CaptureLandBatch (land.c), per partition,
 *	   as the source's owner role;
 *	3. commit; then commit the same offsets to Kafka, for lag tools and
 *	   for a consumer of another server taking a partition over, and copy
 *	   the batch's quarantined messages to the source's dead-letter topic
 *	   (dlq.c), if it has one.
 * On every assignment the worker starts each partition at its stored
 * offset (or, without one, at the group's Kafka offset, else `start`), so
 * a crash anywhere loses and duplicates nothing.
 *
 * Errors that are not a message's fault (table gone, permission revoked,
 * disk full) are contained as TimescaleDB's job runner does: the batch is
 * rolled back, the error is shown in camperso.stat_sources, the worker
 * waits (exponential backoff with jitter, 100 ms up to 30 s), seeks back
 * to the stored offsets and tries again.
 *
 * Broker outages are librdkafka's to ride out: it reconnects with its own
 * exponential backoff and jitter while the worker keeps polling (100 ms
 * waits, no spinning). When librdkafka reports every broker down the
 * source shows state disconnected until a message arrives or, when idle,
 * a metadata probe is answered.
 *
 * Threads and signals: see kafka.c. Rebalance callbacks run inside
 * KafkaConsumerPoll on this thread; the assign callback reads stored
 * offsets in a short transaction of its own with interrupts held and
 * errors caught, so nothing unwinds through librdkafka.
 *
 * Identity: the worker connects as the bootstrap superuser, which it needs
 * for its own bookkeeping (camperso.source_offsets is not writable by
 * source owners), and lands each batch under the source owner's identity
 * (SetUserIdAndSecContext), so the target's privileges are the owner's.
 * Connecting as the owner would also demand LOGIN of it in PostgreSQL 15.
 *
 * Memory: a batch's messages live in a context reset after every batch;
 * librdkafka's prefetch is bounded (kafka.c), so memory stays bounded
 * whatever the backlog.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "capture/capture.h"
#include "core/core.h"
#include "core/errors.h"
#include "observe/observe.h"

/* Longest single wait in Kafka, so interrupts are seen promptly. */
#define WORKER_POLL_MS			100
/* How often an idle worker refreshes high watermarks in the stats. */
#define WORKER_REFRESH_MS		1000
/* Longest wait for a broker's answer when probing whether one is back. */
#define WORKER_PROBE_MS			500
/* How often a batch waiting for its target's lock tries again. */
#define WORKER_LOCK_POLL_MS		250
/* Retry backoff of failed batches. */
#define WORKER_BACKOFF_MIN_MS	100
#define WORKER_BACKOFF_MAX_MS	30000
/* Longest wait for the group to acknowledge our leaving. */
#define WORKER_CLOSE_MS			5000
/* Highest partition number a worker tracks. */
#define WORKER_MAX_PARTITION	100000

/* What this worker knows of one partition of its topic. */
typedef struct WorkerPartition
{
	bool		assigned;		/* ours in the current assignment */
	bool		has_stored;		/* a row exists in camperso.source_offsets */
	int64		stored;			/* its next_offset, as this worker last saw it */
	int64		reset_offset;	/* where reset_offsets() last set it, or -1 */
	int64		floor;			/* another server's Kafka offset past stored, or -1 */
	bool		past_end;		/* the log ends before the stored offset: paused */
	int64		retry_from;		/* where to seek when no stored offset, or -1 */
	TimestampTz last_produced;	/* Kafka timestamp of its last batched message */
	SourceStatsEntry *stats;
	/* filled for the batch being landed */
	int			nbatch;
	int			touched;		/* index in the batch's partition list */
	int64		first;
	int64		last;
	int64		bytes;
} WorkerPartition;

/* The source, read from camperso.sources when the worker starts. */
typedef struct WorkerSource
{
	char	   *name;
	char	   *brokers;
	char	   *topic;
	char	   *group_id;
	char	   *start;
	Oid			owner;
	Oid			target;			/* the target table (fixed: a change restarts us) */
	int			batch_size;		/* 0: camperso.batch_size */
	int			batch_ms;		/* 0: camperso.batch_ms */
	KafkaSetting *settings;
	int			nsettings;
	int			nkafka;			/* of which the source's kafka.* options */
	char	   *dlq_topic;		/* NULL: none */
} WorkerSource;

static CaptureWorkerArgs worker_args;
static char instance_id[40];	/* camperso.capture_instance, tags Kafka commits */
static WorkerSource source;
static KafkaConsumer *consumer = NULL;
static WorkerPartition *parts = NULL;
static int	nparts = 0;
static SourceStatsEntry *source_stats = NULL;
static uint32 resync_generation = 0;
static bool need_resync = false;
static bool resync_after_reset = false;
static int	failures = 0;
static bool brokers_down = false;	/* librdkafka said all brokers are down */
static MemoryContext batch_context = NULL;
static CaptureRawMessage *batch = NULL;
static int	batch_n = 0;
static int	batch_cap = 0;
static SPIPlanPtr fence_update_plan = NULL;
static SPIPlanPtr fence_insert_plan = NULL;
static SPIPlanPtr read_offsets_plan = NULL;

static void WorkerRefreshWatermarks(bool ask_brokers);

/* ---------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------
 */

/* The state of partition p, growing the table as needed. */
static WorkerPartition *
WorkerPart(int32 partition)
{
	if (partition < 0 || partition > WORKER_MAX_PARTITION)
		elog(ERROR, "camperso: partition number %d out of range", partition);
	if (partition >= nparts)
	{
		int			n = Max(partition + 1, nparts * 2);
		int			i;

		if (parts == NULL)
			parts = MemoryContextAlloc(TopMemoryContext, sizeof(WorkerPartition) * n);
		else
			parts = repalloc(parts, sizeof(WorkerPartition) * n);
		for (i = nparts; i < n; i++)
		{
			memset(&parts[i], 0, sizeof(WorkerPartition));
			parts[i].retry_from = -1;
			parts[i].floor = -1;
			parts[i].reset_offset = -1;
		}
		nparts = n;
	}
	return &parts[partition];
}

/*
 * Where partition p goes on, -1 when unknown: its stored offset, or the
 * offset another server of the consumer group committed to Kafka when that
 * is further (it landed up to there; see WorkerTrustCommit).
 */
static int64
WorkerPosition(WorkerPartition *p)
{
	if (!p->has_stored)
		return p->floor;
	if (p->floor < 0)
		return p->stored;
	return Max(p->stored, p->floor);
}

/*
 * The metadata committed to Kafka with an offset of partition p:
 * "camperso/<instance id>/<reset offset or ->". It tells a server that
 * takes the partition over who landed up to that offset.
 */
static void
WorkerCommitMetadata(WorkerPartition *p, char *buf)
{
	if (p->reset_offset >= 0)
		snprintf(buf, KAFKA_METADATA_LEN, "camperso/%s/" INT64_FORMAT,
				 instance_id, p->reset_offset);
	else
		snprintf(buf, KAFKA_METADATA_LEN, "camperso/%s/-", instance_id);
}

/*
 * Whether an offset committed to Kafka with this metadata may move partition
 * p past its stored offset. Only a commit of another camperso server counts
 * (this server's own commits trail its stored offsets; other tools' commits
 * do not speak for PostgreSQL), and only if that server was last reset to
 * the same offset as this one: a reset_offsets() here makes every commit
 * from before it, from any server, stale.
 */
static bool
WorkerTrustCommit(WorkerPartition *p, const char *metadata)
{
	char		instance[40];
	char		mark[32];
	char		mine[32];

	if (sscanf(metadata, "camperso/%39[^/]/%31s", instance, mark) != 2 ||
		strcmp(instance, instance_id) == 0)
		return false;
	if (p->reset_offset >= 0)
		snprintf(mine, sizeof(mine), INT64_FORMAT, p->reset_offset);
	else
		strlcpy(mine, "-", sizeof(mine));
	return strcmp(mark, mine) == 0;
}

/*
 * Contains an error raised in a transaction of this worker: back to the
 * given context, copy and flush the error, abort, and return the copy.
 */
static ErrorData *
WorkerCatch(MemoryContext context)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(context);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(context);
	return edata;
}

/* Records a contained error in the stats and the server log. */
static void
WorkerReportError(ErrorData *edata, const char *doing)
{
	char	   *text = psprintf("%s: %s", doing, edata->message);
	int			i;

	SourceStatsError(source_stats, text);
	for (i = 0; i < nparts; i++)
		if (parts[i].nbatch > 0)
			SourceStatsError(parts[i].stats, text);
	ereport(LOG,
			(errcode(edata->sqlerrcode),
			 errmsg("camperso source \"%s\": %s", source.name, text),
			 edata->detail ? errdetail("%s", edata->detail) : 0));
	pfree(text);
}

/* Sleeps for the retry backoff of the current failure count, with jitter. */
static void
WorkerBackoff(void)
{
	double		delay = WORKER_BACKOFF_MIN_MS;
	TimestampTz until;
	int			i;

	for (i = 1; i < failures && delay < WORKER_BACKOFF_MAX_MS; i++)
		delay *= 2;
	delay = Min(delay, WORKER_BACKOFF_MAX_MS);
	delay *= 0.75 + 0.5 * pg_prng_double(&pg_global_prng_state);
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (int) delay);

	SourceStatsSetState(source_stats, SOURCE_STATE_BACKOFF, MyProcPid);
	pgstat_report_activity(STATE_IDLE, "camperso: waiting to retry a failed batch");
	WorkerRefreshWatermarks(!brokers_down);
	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* ---------------------------------------------------------------------------
 * Stored offsets
 * ---------------------------------------------------------------------------
 */

/*
 * Reads the stored offsets of the source in a transaction of its own and
 * applies them to the given partitions (n = -1: every partition). Raises
 * on failure; callers contain it.
 */
static void
WorkerReadOffsets(int n, const int32 *partitions)
{
	Datum		values[1];
	int32	   *rows_p;
	int64	   *rows_next;
	int64	   *rows_reset;
	uint64		nrows;
	uint64		i;
	int			k;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	if (read_offsets_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};
		SPIPlanPtr	plan = SPI_prepare("SELECT partition, next_offset, coalesce(reset_offset, -1) "
									   "FROM camperso.source_offsets WHERE source = $1",
									   1, argtypes);

		if (plan == NULL)
			elog(ERROR, "camperso: could not prepare the offsets query");
		SPI_keepplan(plan);
		read_offsets_plan = plan;
	}
	values[0] = CStringGetTextDatum(source.name);
	if (SPI_execute_plan(read_offsets_plan, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "camperso: could not read camperso.source_offsets");

	nrows = SPI_processed;
	rows_p = palloc(sizeof(int32) * (nrows + 1));
	rows_next = palloc(sizeof(int64) * (nrows + 1));
	rows_reset = palloc(sizeof(int64) * (nrows + 1));
	for (i = 0; i < nrows; i++)
	{
		bool		isnull;

		rows_p[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc, 1, &isnull));
		rows_next[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												   SPI_tuptable->tupdesc, 2, &isnull));
		rows_reset[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 3, &isnull));
	}

	/* forget what we knew of the partitions asked about, then apply the rows */
	for (k = 0; k < (n < 0 ? nparts : n); k++)
	{
		WorkerPartition *p = WorkerPart(n < 0 ? k : partitions[k]);

		p->has_stored = false;
		p->reset_offset = -1;
	}
	for (i = 0; i < nrows; i++)
	{
		bool		wanted = (n < 0 && rows_p[i] < nparts);
		WorkerPartition *p;

		for (k = 0; !wanted && k < n; k++)
			wanted = partitions[k] == rows_p[i];
		if (!wanted)
			continue;
		p = WorkerPart(rows_p[i]);
		p->has_stored = true;
		p->stored = rows_next[i];
		p->reset_offset = rows_reset[i];
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * The fence (see the file header) for partition p of the batch, in the
 * batch's transaction: raises ERRCODE_CAMPERSO_OFFSET_FENCE when the
 * stored offset is not the one this worker expects.
 */
static void
WorkerFence(int32 partition, WorkerPartition *p)
{
	Datum		values[4];
	int			ret;

	if (fence_update_plan == NULL)
	{
		Oid			argtypes[4] = {TEXTOID, INT4OID, INT8OID, INT8OID};
		SPIPlanPtr	plan;

		plan = SPI_prepare("UPDATE camperso.source_offsets "
						   "SET next_offset = $3, updated_at = now() "
						   "WHERE source = $1 AND partition = $2 AND next_offset = $4",
						   4, argtypes);
		if (plan == NULL)
			elog(ERROR, "camperso: could not prepare the offset fence");
		SPI_keepplan(plan);
		fence_update_plan = plan;
		plan = SPI_prepare("INSERT INTO camperso.source_offsets (source, partition, next_offset) "
						   "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
						   3, argtypes);
		if (plan == NULL)
			elog(ERROR, "camperso: could not prepare the offset fence");
		SPI_keepplan(plan);
		fence_insert_plan = plan;
	}

	if (p->has_stored && p->first < p->stored)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_OFFSET_FENCE),
				 errmsg("batch of partition %d starts at offset " INT64_FORMAT ", before the stored offset " INT64_FORMAT,
						partition, p->first, p->stored)));

	values[0] = CStringGetTextDatum(source.name);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(p->last + 1);
	values[3] = Int64GetDatum(p->stored);
	ret = SPI_execute_plan(p->has_stored ? fence_update_plan : fence_insert_plan,
						   values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE && ret != SPI_OK_INSERT)
		elog(ERROR, "camperso: offset fence failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_OFFSET_FENCE),
				 errmsg("stored offset of partition %d moved under this worker", partition),
				 errdetail("Another worker or camperso.reset_offsets() changed it since this worker read it.")));
}

/*
 * Re-reads the stored offsets and seeks every assigned partition to its
 * stored offset (or, without one, to where its last discarded batch
 * began). Returns false, after reporting, when the read failed.
 */
static bool
WorkerReadAllOffsets(void)
{
	MemoryContext context = CurrentMemoryContext;

	PG_TRY();
	{
		WorkerReadOffsets(-1, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata = WorkerCatch(context);

		WorkerReportError(edata, "reading stored offsets");
		FreeErrorData(edata);
		return false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(context);
	return true;
}

static bool
WorkerResync(bool after_reset)
{
	int32	   *seek_parts;
	int64	   *seek_offsets;
	int			nseek = 0;
	int			i;

	if (!WorkerReadAllOffsets())
		return false;

	seek_parts = palloc(sizeof(int32) * Max(nparts, 1));
	seek_offsets = palloc(sizeof(int64) * Max(nparts, 1));
	for (i = 0; i < nparts; i++)
	{
		WorkerPartition *p = &parts[i];

		if (!p->assigned)
			continue;
		/* reset_offsets() makes the stored offsets win again */
		if (after_reset)
		{
			p->floor = -1;
			p->past_end = false;
		}
		if (p->has_stored)
		{
			seek_parts[nseek] = i;
			seek_offsets[nseek++] = WorkerPosition(p);
			SourceStatsSetOffsets(p->stats, p->stored, -1);
		}
		else if (p->retry_from >= 0 || p->floor >= 0)
		{
			seek_parts[nseek] = i;
			seek_offsets[nseek++] = p->retry_from >= 0 ? p->retry_from : p->floor;
		}
		p->retry_from = -1;
	}
	KafkaConsumerSeek(consumer, nseek, seek_parts, seek_offsets);
	pfree(seek_parts);
	pfree(seek_offsets);
	need_resync = false;
	resync_after_reset = false;
	return true;
}

/* ---------------------------------------------------------------------------
 * Kafka callbacks (run inside KafkaConsumerPoll/Close, on this thread)
 * ---------------------------------------------------------------------------
 */

/* Drops batched messages of partitions no longer assigned to us. */
static void
WorkerBatchDropUnassigned(void)
{
	int			keep = 0;
	int			i;

	for (i = 0; i < batch_n; i++)
	{
		int32		p = batch[i].partition;

		if (p < nparts && parts[p].assigned)
			batch[keep++] = batch[i];
	}
	batch_n = keep;
}

/* Partitions assigned: start each at its stored offset. */
static void
WorkerOnAssign(void *arg, int n, const int32 *partitions, int64 *offsets)
{
	MemoryContext context = CurrentMemoryContext;
	uint32		saved_holdoff = InterruptHoldoffCount;
	int			i;

	/* no die() inside librdkafka's frames; errfinish zeroes the count */
	HOLD_INTERRUPTS();
	PG_TRY();
	{
		int64	   *committed = palloc(sizeof(int64) * Max(n, 1));
		char		(*metadata)[KAFKA_METADATA_LEN] = palloc(KAFKA_METADATA_LEN * Max(n, 1));

		for (i = 0; i < n; i++)
			(void) WorkerPart(partitions[i]);
		WorkerReadOffsets(n, partitions);
		MemoryContextSwitchTo(context);
		KafkaConsumerCommitted(consumer, n, partitions, committed, metadata);
		for (i = 0; i < n; i++)
		{
			WorkerPartition *p = WorkerPart(partitions[i]);

			p->assigned = true;
			p->retry_from = -1;
			p->floor = -1;
			p->past_end = false;
			if (p->has_stored && committed[i] > p->stored &&
				WorkerTrustCommit(p, metadata[i]))
			{
				p->floor = committed[i];
				ereport(LOG,
						(errmsg("camperso source \"%s\": partition %d goes on at offset " INT64_FORMAT ", committed to Kafka by another member of group \"%s\", past the stored offset " INT64_FORMAT,
								source.name, partitions[i], p->floor, source.group_id, p->stored)));
			}
			offsets[i] = p->has_stored ? WorkerPosition(p) : KAFKA_OFFSET_DEFAULT;
			if (p->stats == NULL)
				p->stats = SourceStatsAcquire(source.name, partitions[i]);
			SourceStatsSetState(p->stats, SOURCE_STATE_ASSIGNED, MyProcPid);
			if (p->has_stored)
				SourceStatsSetOffsets(p->stats, p->stored, -1);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata = WorkerCatch(context);

		WorkerReportError(edata, "reading stored offsets of assigned partitions");
		FreeErrorData(edata);
		/* start where Kafka says; the next loop seeks once the read works */
		for (i = 0; i < n; i++)
		{
			if (partitions[i] >= 0 && partitions[i] < nparts)
			{
				parts[partitions[i]].assigned = true;
				parts[partitions[i]].retry_from = -1;
			}
			offsets[i] = KAFKA_OFFSET_DEFAULT;
		}
		need_resync = true;
	}
	PG_END_TRY();
	InterruptHoldoffCount = saved_holdoff;
}

/* Partitions revoked (n = -1: all): forget them and their batched messages. */
static void
WorkerOnRevoke(void *arg, int n, const int32 *partitions, int64 *offsets,
			   char (*metadata)[KAFKA_METADATA_LEN])
{
	int			i;

	for (i = 0; i < (n < 0 ? nparts : n); i++)
	{
		int32		p = n < 0 ? (int32) i : partitions[i];

		if (n >= 0)
		{
			offsets[i] = (p >= 0 && p < nparts) ? WorkerPosition(&parts[p]) : -1;
			if (offsets[i] >= 0)
				WorkerCommitMetadata(&parts[p], metadata[i]);
		}
		if (p < 0 || p >= nparts || (!parts[p].assigned && n < 0))
			continue;
		parts[p].assigned = false;
		parts[p].retry_from = -1;
		parts[p].floor = -1;
		parts[p].past_end = false;
		SourceStatsSetState(parts[p].stats, SOURCE_STATE_UNASSIGNED, 0);
	}
	WorkerBatchDropUnassigned();
}

/* Client-level errors: shown in the stats, never fatal (librdkafka retries). */
static void
WorkerOnKafkaError(void *arg, const char *text)
{
	SourceStatsError(source_stats, text);
}

/*
 * Every broker is unreachable: shown as state disconnected until a message
 * arrives or a probe gets an answer (WorkerBrokersBack). librdkafka keeps
 * reconnecting meanwhile, with its own exponential backoff and jitter
 * (reconnect.backoff.ms up to reconnect.backoff.max.ms).
 */
static void
WorkerOnAllBrokersDown(void *arg)
{
	if (brokers_down)
		return;
	brokers_down = true;
	SourceStatsSetState(source_stats, SOURCE_STATE_DISCONNECTED, MyProcPid);
	ereport(LOG,
			(errmsg("camperso source \"%s\": every Kafka broker is unreachable; waiting for one to come back",
					source.name)));
}

/* A broker answered again: back to running (or backoff, if a batch fails). */
static void
WorkerBrokersBack(void)
{
	if (!brokers_down)
		return;
	brokers_down = false;
	SourceStatsSetState(source_stats, failures > 0 ? SOURCE_STATE_BACKOFF : SOURCE_STATE_RUNNING,
						MyProcPid);
	ereport(LOG,
			(errmsg("camperso source \"%s\": Kafka brokers reachable again", source.name)));
}

/* ---------------------------------------------------------------------------
 * Batches
 * ---------------------------------------------------------------------------
 */

/*
 * A message below the partition's position came: normally one prefetched
 * before a seek, landed already. But when the partition's log now ends
 * before the stored offset, the topic was deleted and recreated or its log
 * truncated, and librdkafka, finding the stored offset out of range, went
 * back to the start of the log: what it reads there was never landed.
 * Skipping it as landed would lose it silently, and landing from the
 * stored offset on once the new log reaches it would leave a gap. So the
 * partition is paused (nothing of it lands) with the error in the stats
 * until camperso.reset_offsets() says where to go on, or the partition is
 * reassigned.
 */
static void
WorkerCheckPastEnd(int32 partition, WorkerPartition *p)
{
	int64		high;
	char	   *text;

	if (p->past_end || !p->has_stored)
		return;
	high = KafkaConsumerHighWatermark(consumer, partition);
	if (high < 0 || high >= WorkerPosition(p))
		return;
	p->past_end = true;
	text = psprintf("partition %d ends at offset " INT64_FORMAT ", before its stored offset " INT64_FORMAT
					": the topic was recreated or truncated; nothing of the partition lands until camperso.reset_offsets() says where to go on",
					partition, high, WorkerPosition(p));
	SourceStatsError(source_stats, text);
	SourceStatsError(p->stats, text);
	ereport(LOG,
			(errcode(ERRCODE_CAMPERSO_KAFKA),
			 errmsg("camperso source \"%s\": %s", source.name, text)));
	pfree(text);
}

/*
 * Collects up to batch_size messages, waiting at most batch_ms after the
 * first one; returns at once (with none) after an idle poll, so the loop
 * sees interrupts and resync requests. Messages below a partition's stored
 * offset were landed already and are skipped.
 */
static int
WorkerCollectBatch(int batch_size, int batch_ms)
{
	MemoryContext old = MemoryContextSwitchTo(batch_context);
	TimestampTz deadline = 0;

	batch_n = 0;
	batch_cap = Min(batch_size, 1024);
	batch = palloc(sizeof(CaptureRawMessage) * batch_cap);

	while (batch_n < batch_size && !need_resync)
	{
		CaptureRawMessage msg;
		TimestampTz produced_at;
		WorkerPartition *p;
		int			timeout = WORKER_POLL_MS;
		int			r;

		if (batch_n > 0)
		{
			long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

			if (left <= 0)
				break;
			timeout = Min(left, WORKER_POLL_MS);
		}

		r = KafkaConsumerPoll(consumer, timeout, &msg, &produced_at);
		CHECK_FOR_INTERRUPTS();
		if (r <= 0)
		{
			if (batch_n == 0)
				break;
			continue;
		}

		WorkerBrokersBack();
		p = WorkerPart(msg.partition);
		if (!p->assigned)
			continue;
		if (msg.offset < WorkerPosition(p) || p->past_end)
		{
			WorkerCheckPastEnd(msg.partition, p);
			continue;
		}
		msg.received_at = GetCurrentTimestamp();
		if (batch_n == batch_cap)
		{
			batch_cap = Min(batch_cap * 2, batch_size);
			batch = repalloc(batch, sizeof(CaptureRawMessage) * batch_cap);
		}
		batch[batch_n++] = msg;
		p->last_produced = produced_at;
		if (batch_n == 1)
			deadline = TimestampTzPlusMilliseconds(msg.received_at, batch_ms);
	}
	MemoryContextSwitchTo(old);
	return need_resync ? 0 : batch_n;
}

/*
 * Takes the target's lock for the batch in the batch's transaction, before
 * anything else, without queueing behind a conflicting lock (a session
 * holding SHARE or stronger on the staging table). While the lock is held
 * elsewhere the batch waits in memory (Kafka's prefetch stays bounded),
 * the high watermarks in the stats, hence the lag, are kept fresh, and
 * pg_stat_activity says what the worker waits for. A queued lock request
 * would leave the stats as they were until the lock came free, and would
 * queue DDL behind the worker.
 */
static void
WorkerLockTarget(void)
{
	bool		waited = false;
	int			polls = 0;

	while (!ConditionalLockRelationOid(source.target, RowExclusiveLock))
	{
		if (!waited)
			pgstat_report_activity(STATE_RUNNING, "camperso: waiting for a lock on the target table");
		/* the brokers are asked at most once a second */
		WorkerRefreshWatermarks(!waited || ++polls % (WORKER_REFRESH_MS / WORKER_LOCK_POLL_MS) == 0);
		waited = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WORKER_LOCK_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (waited)
		pgstat_report_activity(STATE_RUNNING, "camperso: landing a batch");
}

/*
 * Lands the collected batch in one transaction with its offsets (see the
 * file header), then commits the offsets to Kafka and counts the stats.
 */
static void
WorkerLandBatch(void)
{
	MemoryContext context = CurrentMemoryContext;
	int32	   *touched;
	volatile int ntouched = 0;
	int		   *start;
	CaptureRawMessage *sorted;
	CaptureLandResult *results;
	int64	   *next_offsets;
	char		(*metadata)[KAFKA_METADATA_LEN];
	TimestampTz committed_at;
	int			i;

	/* per-partition summary, and the batch grouped by partition (stable) */
	for (i = 0; i < nparts; i++)
		parts[i].nbatch = 0;
	touched = palloc(sizeof(int32) * Max(nparts, 1));
	for (i = 0; i < batch_n; i++)
	{
		WorkerPartition *p = &parts[batch[i].partition];

		if (p->nbatch == 0)
		{
			p->touched = ntouched;
			touched[ntouched++] = batch[i].partition;
			p->first = batch[i].offset;
			p->bytes = 0;
		}
		p->nbatch++;
		p->last = batch[i].offset;
		p->bytes += batch[i].payload_len;
	}
	start = palloc(sizeof(int) * (ntouched + 1));
	start[0] = 0;
	for (i = 0; i < ntouched; i++)
	{
		start[i + 1] = start[i] + parts[touched[i]].nbatch;
		parts[touched[i]].nbatch = 0;	/* reused as fill position below */
	}
	sorted = palloc(sizeof(CaptureRawMessage) * Max(batch_n, 1));
	for (i = 0; i < batch_n; i++)
	{
		WorkerPartition *p = &parts[batch[i].partition];

		sorted[start[p->touched] + p->nbatch++] = batch[i];
	}
	results = palloc0(sizeof(CaptureLandResult) * Max(ntouched, 1));

	PG_TRY();
	{
		CaptureTarget *target;
		Oid			save_userid;
		int			save_sec_context;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "camperso: landing a batch");
		WorkerLockTarget();

		SPI_connect();
		for (i = 0; i < ntouched; i++)
			WorkerFence(touched[i], &parts[touched[i]]);
		SPI_finish();

		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(source.owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		target = CaptureTargetOpen(source.name);
		for (i = 0; i < ntouched; i++)
			CaptureLandBatch(target, &sorted[start[i]], start[i + 1] - start[i], &results[i],
							 batch_context);
		SetUserIdAndSecContext(save_userid, save_sec_context);

		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata = WorkerCatch(context);

		/* seek back: to the stored offsets, or where this batch began */
		for (i = 0; i < ntouched; i++)
		{
			WorkerPartition *p = &parts[touched[i]];

			if (!p->has_stored)
				p->retry_from = p->first;
		}
		need_resync = true;
		if (edata->sqlerrcode == ERRCODE_CAMPERSO_OFFSET_FENCE)
			ereport(LOG,
					(errmsg("camperso source \"%s\": batch rolled back by the offset fence: %s",
							source.name, edata->message)));
		else
		{
			failures++;
			WorkerReportError(edata, "landing a batch failed, retrying");
			for (i = 0; i < nparts; i++)
				parts[i].nbatch = 0;
			FreeErrorData(edata);
			WorkerBackoff();
			return;
		}
		for (i = 0; i < nparts; i++)
			parts[i].nbatch = 0;
		FreeErrorData(edata);
		return;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(context);
	pgstat_report_activity(STATE_IDLE, NULL);

	/* committed: our view of the stored offsets, Kafka, the stats */
	committed_at = GetCurrentTimestamp();
	next_offsets = palloc(sizeof(int64) * Max(ntouched, 1));
	metadata = palloc(KAFKA_METADATA_LEN * Max(ntouched, 1));
	for (i = 0; i < ntouched; i++)
	{
		WorkerPartition *p = &parts[touched[i]];
		CaptureLandResult *r = &results[i];

		p->has_stored = true;
		p->stored = p->last + 1;
		p->retry_from = -1;
		next_offsets[i] = p->stored;
		WorkerCommitMetadata(p, metadata[i]);
		SourceStatsCountBatch(p->stats, start[i + 1] - start[i], p->bytes,
							  r->quarantined, r->deduplicated, p->stored,
							  p->last_produced ? p->last_produced : committed_at,
							  committed_at);
		SourceStatsSetOffsets(p->stats, -1, KafkaConsumerHighWatermark(consumer, touched[i]));
		p->nbatch = 0;
	}
	KafkaConsumerCommit(consumer, ntouched, touched, next_offsets, metadata);
	/* the quarantine rows are committed: now their dead-letter copies */
	for (i = 0; i < ntouched; i++)
		CaptureDlqSend(results[i].quarantine, results[i].nquarantine);
	if (failures > 0)
	{
		failures = 0;
		SourceStatsSetState(source_stats, SOURCE_STATE_RUNNING, MyProcPid);
	}
}

/*
 * Keeps the high watermarks (hence the lag) in the stats fresh: from what
 * librdkafka last fetched, or, with ask_brokers, from the partition leaders
 * (when nothing is being consumed, librdkafka stops fetching once its
 * prefetch queue is full, and its figures go stale).
 */
static void
WorkerRefreshWatermarks(bool ask_brokers)
{
	int			i;

	for (i = 0; i < nparts; i++)
	{
		int64		high = -1;

		if (!parts[i].assigned)
			continue;
		if (ask_brokers)
			high = KafkaConsumerQueryHighWatermark(consumer, i, WORKER_PROBE_MS);
		if (high < 0)
			high = KafkaConsumerHighWatermark(consumer, i);
		SourceStatsSetOffsets(parts[i].stats, -1, high);
	}
}

/* ---------------------------------------------------------------------------
 * Start and exit
 * ---------------------------------------------------------------------------
 */

/*
 * Reads the source's definition in a transaction. Returns false when the
 * source is gone or disabled (the launcher is about to stop us).
 */
static bool
WorkerLoadSource(void)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	MemoryContext top = TopMemoryContext;
	bool		found = false;
	uint64		i;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();

	values[0] = CStringGetTextDatum(worker_args.source);
	if (SPI_execute_with_args("SELECT brokers, topic, owner, "
							  "coalesce(options->>'group_id', 'camperso.' || name), "
							  "coalesce(options->>'start', 'earliest'), "
							  "coalesce((options->>'batch_size')::int, 0), "
							  "coalesce((options->>'batch_ms')::int, 0), "
							  "options->>'dlq_topic', target::oid "
							  "FROM camperso.sources WHERE name = $1 AND enabled",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "camperso: could not read camperso.sources");
	if (SPI_processed == 1)
	{
		HeapTuple	tup;
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *owner;
		char	   *dlq_topic;

		found = true;
		tup = SPI_tuptable->vals[0];
		source.name = MemoryContextStrdup(top, worker_args.source);
		source.brokers = MemoryContextStrdup(top, SPI_getvalue(tup, desc, 1));
		source.topic = MemoryContextStrdup(top, SPI_getvalue(tup, desc, 2));
		owner = SPI_getvalue(tup, desc, 3);
		source.group_id = MemoryContextStrdup(top, SPI_getvalue(tup, desc, 4));
		source.start = MemoryContextStrdup(top, SPI_getvalue(tup, desc, 5));
		source.batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		source.batch_ms = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
		dlq_topic = SPI_getvalue(tup, desc, 8);
		source.dlq_topic = dlq_topic ? MemoryContextStrdup(top, dlq_topic) : NULL;
		source.target = DatumGetObjectId(SPI_getbinval(tup, desc, 9, &isnull));
		source.owner = get_role_oid(owner, true);
		if (!OidIsValid(source.owner))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("owner role \"%s\" of source \"%s\" does not exist",
							owner, worker_args.source),
					 errhint("Drop the source and create it again as an existing role.")));

		if (SPI_execute_with_args("SELECT substr(key, 7), value #>> '{}' "
								  "FROM camperso.sources, jsonb_each(options) "
								  "WHERE name = $1 AND key LIKE 'kafka.%' ORDER BY key",
								  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "camperso: could not read the options of the source");
		source.settings = MemoryContextAlloc(top, sizeof(KafkaSetting) * (SPI_processed + 1));
		source.nsettings = 0;
		for (i = 0; i < SPI_processed; i++)
		{
			source.settings[i].name = MemoryContextStrdup(top, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
			source.settings[i].value = MemoryContextStrdup(top, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
			source.nsettings++;
		}
		source.nkafka = source.nsettings;
		if (SPI_execute("SELECT id FROM camperso.capture_instance", true, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "camperso: camperso.capture_instance holds no identity");
		strlcpy(instance_id, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
				sizeof(instance_id));

		/* where a partition without any committed offset starts */
		source.settings[source.nsettings].name = "auto.offset.reset";
		source.settings[source.nsettings].value = source.start;
		source.nsettings++;
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return found;
}

/* Leaves the consumer group and clears our traces; a shmem-exit callback. */
static void
WorkerOnExit(int code, Datum arg)
{
	int			i;

	/* copies in flight get a short while; the quarantine holds them anyway */
	CaptureDlqClose();
	if (consumer != NULL)
	{
		KafkaConsumer *kc = consumer;

		consumer = NULL;
		KafkaConsumerClose(kc, WORKER_CLOSE_MS);
	}
	for (i = 0; i < nparts; i++)
		SourceStatsRelease(parts[i].stats, MyProcPid, SOURCE_STATE_UNASSIGNED);
	SourceStatsRelease(source_stats, MyProcPid, SOURCE_STATE_STOPPED);
	CaptureSlotRelease(worker_args.slot, worker_args.generation);
}

/*
 * Reads the source and opens the consumer; an error here ends the worker
 * (the launcher restarts it with a backoff) after showing it in the stats.
 */
static void
WorkerStart(void)
{
	KafkaCallbacks callbacks;
	char		client_id[NAMEDATALEN + 32];

	PG_TRY();
	{
		if (!WorkerLoadSource())
			proc_exit(0);

		memset(&callbacks, 0, sizeof(callbacks));
		callbacks.arg = NULL;
		callbacks.assign = WorkerOnAssign;
		callbacks.revoke = WorkerOnRevoke;
		callbacks.error = WorkerOnKafkaError;
		callbacks.all_brokers_down = WorkerOnAllBrokersDown;
		snprintf(client_id, sizeof(client_id), "camperso-%s-%d",
				 source.name, worker_args.index);
		consumer = KafkaConsumerOpen(source.brokers, source.topic, source.group_id,
									 client_id, source.settings, source.nsettings,
									 &callbacks);
		/* the dead-letter producer shares the source's kafka.* options */
		strlcat(client_id, "-dlq", sizeof(client_id));
		CaptureDlqOpen(source.name, source.brokers, source.topic, source.dlq_topic,
					   client_id, source.settings, source.nkafka, source_stats);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		SourceStatsError(source_stats, edata->message);
		PG_RE_THROW();
	}
	PG_END_TRY();
}


/* Entry point of a source worker; main_arg is its registry slot. */
void
CampersoSourceWorkerMain(Datum main_arg)
{
	TimestampTz last_refresh = 0;

	memcpy(&worker_args, MyBgworkerEntry->bgw_extra, sizeof(worker_args));

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	CoreRequirePreload("a camperso source worker");

	BackgroundWorkerInitializeConnectionByOid(worker_args.database, InvalidOid, 0);
	if (!CaptureSlotClaim(worker_args.slot, worker_args.generation, worker_args.source))
		proc_exit(0);			/* the launcher gave this slot away meanwhile */
	before_shmem_exit(WorkerOnExit, (Datum) 0);

	source_stats = SourceStatsAcquire(worker_args.source, SOURCE_STATS_SOURCE_ROW);
	SourceStatsSetState(source_stats, SOURCE_STATE_STARTING, MyProcPid);
	pgstat_report_appname(worker_args.source);

	batch_context = AllocSetContextCreate(TopMemoryContext, "camperso batch",
										  ALLOCSET_DEFAULT_SIZES);

	WorkerStart();

	ereport(LOG,
			(errmsg("camperso source worker %d of \"%s\" started: topic \"%s\", group \"%s\"",
					worker_args.index, source.name, source.topic, source.group_id)));
	SourceStatsSetState(source_stats, SOURCE_STATE_RUNNING, MyProcPid);
	resync_generation = SourceStatsResyncGeneration(source_stats);

	for (;;)
	{
		uint32		generation;
		int			n;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		generation = SourceStatsResyncGeneration(source_stats);
		if (generation != resync_generation)
		{
			resync_generation = generation;
			need_resync = true;
			resync_after_reset = true;
		}
		if (need_resync && !WorkerResync(resync_after_reset))
		{
			failures++;
			WorkerBackoff();
			continue;
		}

		n = WorkerCollectBatch(source.batch_size > 0 ? source.batch_size : camperso_batch_size,
							   source.batch_ms > 0 ? source.batch_ms : camperso_batch_ms);
		if (n > 0)
		{
			/* the batch's bookkeeping goes with it (not TopMemoryContext) */
			MemoryContext old = MemoryContextSwitchTo(batch_context);

			WorkerLandBatch();
			MemoryContextSwitchTo(old);
		}
		else if (TimestampDifferenceExceeds(last_refresh, GetCurrentTimestamp(), WORKER_REFRESH_MS))
		{
			if (brokers_down && KafkaConsumerProbe(consumer, WORKER_PROBE_MS))
				WorkerBrokersBack();
			WorkerRefreshWatermarks(false);
			last_refresh = GetCurrentTimestamp();
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		CaptureDlqServe();
		MemoryContextReset(batch_context);
		batch = NULL;
		batch_n = 0;
	}
}
