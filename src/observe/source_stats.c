/*-------------------------------------------------------------------------
 *
 * source_stats.c
 *	  Shared-memory statistics of the Kafka sources, per source and
 *	  partition, and the SQL functions that read and reset them
 *	  (camperso.stat_sources, camperso.stat_reset).
 *
 * The table holds camperso.stat_sources_max entries, set up in the chained
 * shmem_startup_hook (pg_stat_statements' way, with the "found" guard).
 *
 * Locking protocol:
 *	- An entry's key (in_use, source, partition) changes only under
 *	  SourceStats->lock held exclusively: SourceStatsAcquire creating an
 *	  entry, SourceStatsForget releasing a source's entries. Scans of the
 *	  table (the SRF, reset, acquire's lookup) hold it shared.
 *	- Every figure of an entry is an atomic written without any lock, so a
 *	  worker's hot path (one batch committed) takes no lock at all. A reader
 *	  may see the figures of one entry from slightly different moments; each
 *	  figure on its own is always whole.
 *	- last_error and dlq_last_error (texts) are guarded by the entry's
 *	  spinlock; they are written only when something failed, never on the
 *	  hot path.
 * Writers keep the entry pointer they acquired for as long as they run.
 * A released entry goes to the back of the reuse order, so a straggling
 * writer of a just-dropped source does not land in a new source's figures.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "core/core.h"
#include "observe/observe.h"

#define STATS_ERROR_LEN 512
#define STATS_NEVER		((uint64) 0)	/* timestamps: not yet */
#define STATS_UNKNOWN	PG_UINT64_MAX	/* offsets: not known */

struct SourceStatsEntry
{
	/* key: changes only under SourceStats->lock exclusive */
	bool		in_use;
	int32		partition;
	char		source[NAMEDATALEN];
	uint64		released_at;	/* reuse order of free entries */

	/* figures: atomics, written without locks */
	pg_atomic_uint32 state;
	pg_atomic_uint32 pid;
	pg_atomic_uint32 resync_generation;
	pg_atomic_uint64 committed_offset;
	pg_atomic_uint64 high_watermark;
	pg_atomic_uint64 messages;
	pg_atomic_uint64 bytes;
	pg_atomic_uint64 quarantined;
	pg_atomic_uint64 deduplicated;
	pg_atomic_uint64 batches;
	pg_atomic_uint64 errors;
	pg_atomic_uint64 last_message_at;
	pg_atomic_uint64 last_commit_at;
	pg_atomic_uint64 last_error_at;
	/* the dead-letter topic (source rows): copies delivered, failed */
	pg_atomic_uint64 dlq_produced;
	pg_atomic_uint64 dlq_failed;
	pg_atomic_uint64 dlq_last_error_at;

	/* error texts: under mutex */
	slock_t		mutex;
	char		last_error[STATS_ERROR_LEN];
	char		dlq_last_error[STATS_ERROR_LEN];
};

typedef struct SourceStatsShared
{
	LWLock	   *lock;
	int			nentries;
	uint64		release_counter;	/* under lock exclusive */
	SourceStatsEntry entries[FLEXIBLE_ARRAY_MEMBER];
} SourceStatsShared;

static SourceStatsShared *SourceStats = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static const char *const SourceStateNames[] = {
	[SOURCE_STATE_NONE] = "unknown",
	[SOURCE_STATE_STOPPED] = "stopped",
	[SOURCE_STATE_STARTING] = "starting",
	[SOURCE_STATE_RUNNING] = "running",
	[SOURCE_STATE_BACKOFF] = "backoff",
	[SOURCE_STATE_RESTARTING] = "restarting",
	[SOURCE_STATE_WAITING] = "waiting",
	[SOURCE_STATE_ASSIGNED] = "assigned",
	[SOURCE_STATE_UNASSIGNED] = "unassigned",
	[SOURCE_STATE_STALE] = "stale",
	[SOURCE_STATE_DISCONNECTED] = "disconnected",
};

static Size
SourceStatsShmemSize(void)
{
	return add_size(offsetof(SourceStatsShared, entries),
					mul_size(camperso_stat_sources_max, sizeof(SourceStatsEntry)));
}

static void
SourceStatsShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(SourceStatsShmemSize());
	RequestNamedLWLockTranche("camperso source stats", 1);
}

/* Zeroes the figures of an entry (not its key, state or pid). */
static void
SourceStatsZeroCounters(SourceStatsEntry *e)
{
	pg_atomic_write_u64(&e->messages, 0);
	pg_atomic_write_u64(&e->bytes, 0);
	pg_atomic_write_u64(&e->quarantined, 0);
	pg_atomic_write_u64(&e->deduplicated, 0);
	pg_atomic_write_u64(&e->batches, 0);
	pg_atomic_write_u64(&e->errors, 0);
	pg_atomic_write_u64(&e->last_message_at, STATS_NEVER);
	pg_atomic_write_u64(&e->last_commit_at, STATS_NEVER);
	pg_atomic_write_u64(&e->last_error_at, STATS_NEVER);
	pg_atomic_write_u64(&e->dlq_produced, 0);
	pg_atomic_write_u64(&e->dlq_failed, 0);
	pg_atomic_write_u64(&e->dlq_last_error_at, STATS_NEVER);
	SpinLockAcquire(&e->mutex);
	e->last_error[0] = '\0';
	e->dlq_last_error[0] = '\0';
	SpinLockRelease(&e->mutex);
}

static void
SourceStatsShmemStartup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	SourceStats = ShmemInitStruct("camperso source stats",
								  SourceStatsShmemSize(), &found);
	if (!found)
	{
		SourceStats->lock = &(GetNamedLWLockTranche("camperso source stats"))->lock;
		SourceStats->nentries = camperso_stat_sources_max;
		SourceStats->release_counter = 0;
		for (i = 0; i < SourceStats->nentries; i++)
		{
			SourceStatsEntry *e = &SourceStats->entries[i];

			e->in_use = false;
			e->partition = 0;
			e->source[0] = '\0';
			e->released_at = 0;
			pg_atomic_init_u32(&e->state, SOURCE_STATE_NONE);
			pg_atomic_init_u32(&e->pid, 0);
			pg_atomic_init_u32(&e->resync_generation, 0);
			pg_atomic_init_u64(&e->committed_offset, STATS_UNKNOWN);
			pg_atomic_init_u64(&e->high_watermark, STATS_UNKNOWN);
			pg_atomic_init_u64(&e->messages, 0);
			pg_atomic_init_u64(&e->bytes, 0);
			pg_atomic_init_u64(&e->quarantined, 0);
			pg_atomic_init_u64(&e->deduplicated, 0);
			pg_atomic_init_u64(&e->batches, 0);
			pg_atomic_init_u64(&e->errors, 0);
			pg_atomic_init_u64(&e->last_message_at, STATS_NEVER);
			pg_atomic_init_u64(&e->last_commit_at, STATS_NEVER);
			pg_atomic_init_u64(&e->last_error_at, STATS_NEVER);
			pg_atomic_init_u64(&e->dlq_produced, 0);
			pg_atomic_init_u64(&e->dlq_failed, 0);
			pg_atomic_init_u64(&e->dlq_last_error_at, STATS_NEVER);
			SpinLockInit(&e->mutex);
			e->last_error[0] = '\0';
			e->dlq_last_error[0] = '\0';
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shared-memory hooks; only called while preloading. */
void
SourceStatsShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = SourceStatsShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = SourceStatsShmemStartup;
}

/* Finds an entry; caller holds the lock in any mode. */
static SourceStatsEntry *
SourceStatsFind(const char *source, int32 partition)
{
	int			i;

	for (i = 0; i < SourceStats->nentries; i++)
	{
		SourceStatsEntry *e = &SourceStats->entries[i];

		if (e->in_use && e->partition == partition &&
			strcmp(e->source, source) == 0)
			return e;
	}
	return NULL;
}

/*
 * Returns the entry of (source, partition), creating it when absent, or
 * NULL when the library is not preloaded or the table is full (a WARNING
 * says so once per process). Takes the table lock; callers keep the result.
 */
SourceStatsEntry *
SourceStatsAcquire(const char *source, int32 partition)
{
	static bool warned_full = false;
	SourceStatsEntry *e;
	SourceStatsEntry *victim = NULL;
	int			i;

	if (SourceStats == NULL)
		return NULL;

	LWLockAcquire(SourceStats->lock, LW_SHARED);
	e = SourceStatsFind(source, partition);
	LWLockRelease(SourceStats->lock);
	if (e != NULL)
		return e;

	LWLockAcquire(SourceStats->lock, LW_EXCLUSIVE);
	e = SourceStatsFind(source, partition);
	if (e == NULL)
	{
		/* the free entry released longest ago (never used ones first) */
		for (i = 0; i < SourceStats->nentries; i++)
		{
			SourceStatsEntry *c = &SourceStats->entries[i];

			if (!c->in_use && (victim == NULL || c->released_at < victim->released_at))
				victim = c;
		}
		if (victim != NULL)
		{
			e = victim;
			strlcpy(e->source, source, NAMEDATALEN);
			e->partition = partition;
			pg_atomic_write_u32(&e->state, SOURCE_STATE_NONE);
			pg_atomic_write_u32(&e->pid, 0);
			pg_atomic_write_u64(&e->committed_offset, STATS_UNKNOWN);
			pg_atomic_write_u64(&e->high_watermark, STATS_UNKNOWN);
			SourceStatsZeroCounters(e);
			e->in_use = true;
		}
	}
	LWLockRelease(SourceStats->lock);

	if (e == NULL && !warned_full)
	{
		warned_full = true;
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("camperso source statistics are full"),
				 errdetail("All %d entries of camperso.stat_sources are in use; statistics of source \"%s\" partition %d are not kept.",
						   camperso_stat_sources_max, source, partition),
				 errhint("Raise camperso.stat_sources_max and restart the server.")));
	}
	return e;
}

/* Sets the state and process of an entry; pid 0 means no process. */
void
SourceStatsSetState(SourceStatsEntry *entry, SourceState state, int pid)
{
	if (entry == NULL)
		return;
	pg_atomic_write_u32(&entry->state, (uint32) state);
	pg_atomic_write_u32(&entry->pid, (uint32) pid);
}

/*
 * Sets an entry's state and clears its pid if process pid still owns it:
 * an exiting worker must not overwrite its successor's state.
 */
void
SourceStatsRelease(SourceStatsEntry *entry, int pid, SourceState state)
{
	uint32		expected = (uint32) pid;

	if (entry == NULL)
		return;
	if (pg_atomic_compare_exchange_u32(&entry->pid, &expected, 0))
		pg_atomic_write_u32(&entry->state, (uint32) state);
}

/* Sets the committed offset and high watermark; -1 leaves one unchanged. */
void
SourceStatsSetOffsets(SourceStatsEntry *entry, int64 committed, int64 high_watermark)
{
	if (entry == NULL)
		return;
	if (committed >= 0)
		pg_atomic_write_u64(&entry->committed_offset, (uint64) committed);
	if (high_watermark >= 0)
		pg_atomic_write_u64(&entry->high_watermark, (uint64) high_watermark);
}

/* Adds one committed batch's figures to an entry: the hot path, no lock. */
void
SourceStatsCountBatch(SourceStatsEntry *entry, int64 messages, int64 bytes,
					  int64 quarantined, int64 deduplicated, int64 committed,
					  TimestampTz last_message_at, TimestampTz committed_at)
{
	if (entry == NULL)
		return;
	pg_atomic_fetch_add_u64(&entry->messages, messages);
	pg_atomic_fetch_add_u64(&entry->bytes, bytes);
	pg_atomic_fetch_add_u64(&entry->quarantined, quarantined);
	pg_atomic_fetch_add_u64(&entry->deduplicated, deduplicated);
	pg_atomic_fetch_add_u64(&entry->batches, 1);
	if (committed >= 0)
		pg_atomic_write_u64(&entry->committed_offset, (uint64) committed);
	if (last_message_at != 0)
		pg_atomic_write_u64(&entry->last_message_at, (uint64) last_message_at);
	pg_atomic_write_u64(&entry->last_commit_at, (uint64) committed_at);
}

/* Counts an error and keeps its text (truncated); the cold path. */
void
SourceStatsError(SourceStatsEntry *entry, const char *text)
{
	if (entry == NULL)
		return;
	pg_atomic_fetch_add_u64(&entry->errors, 1);
	pg_atomic_write_u64(&entry->last_error_at, (uint64) GetCurrentTimestamp());
	SpinLockAcquire(&entry->mutex);
	strlcpy(entry->last_error, text ? text : "", STATS_ERROR_LEN);
	SpinLockRelease(&entry->mutex);
}

/* Adds dead-letter copies delivered and failed to a source row; no lock. */
void
SourceStatsCountDlq(SourceStatsEntry *entry, int64 produced, int64 failed)
{
	if (entry == NULL)
		return;
	if (produced > 0)
		pg_atomic_fetch_add_u64(&entry->dlq_produced, produced);
	if (failed > 0)
		pg_atomic_fetch_add_u64(&entry->dlq_failed, failed);
}

/* Keeps the text of the last dead-letter topic failure (truncated). */
void
SourceStatsDlqError(SourceStatsEntry *entry, const char *text)
{
	if (entry == NULL)
		return;
	pg_atomic_write_u64(&entry->dlq_last_error_at, (uint64) GetCurrentTimestamp());
	SpinLockAcquire(&entry->mutex);
	strlcpy(entry->dlq_last_error, text ? text : "", STATS_ERROR_LEN);
	SpinLockRelease(&entry->mutex);
}

/* The resync generation of a source row; workers compare it every loop. */
uint32
SourceStatsResyncGeneration(SourceStatsEntry *entry)
{
	if (entry == NULL)
		return 0;
	return pg_atomic_read_u32(&entry->resync_generation);
}

/*
 * Asks the workers of a source to re-read their stored offsets and seek to
 * them (after camperso.reset_offsets commits): bumps the source row's
 * generation. Without a source row no worker of it has run; nothing to do.
 */
void
SourceStatsRequestResync(const char *source)
{
	SourceStatsEntry *e;

	if (SourceStats == NULL)
		return;
	LWLockAcquire(SourceStats->lock, LW_SHARED);
	e = SourceStatsFind(source, SOURCE_STATS_SOURCE_ROW);
	if (e != NULL)
		pg_atomic_fetch_add_u32(&e->resync_generation, 1);
	LWLockRelease(SourceStats->lock);
}

/* Releases every entry of a source (camperso.drop_source). */
void
SourceStatsForget(const char *source)
{
	int			i;

	if (SourceStats == NULL)
		return;
	LWLockAcquire(SourceStats->lock, LW_EXCLUSIVE);
	for (i = 0; i < SourceStats->nentries; i++)
	{
		SourceStatsEntry *e = &SourceStats->entries[i];

		if (e->in_use && strcmp(e->source, source) == 0)
		{
			e->in_use = false;
			e->released_at = ++SourceStats->release_counter;
		}
	}
	LWLockRelease(SourceStats->lock);
}

/*
 * Marks entries whose process is gone as stale; the launcher calls it when
 * it starts, since workers of a previous launcher may have died unseen.
 */
void
SourceStatsMarkStale(void)
{
	int			i;

	if (SourceStats == NULL)
		return;
	LWLockAcquire(SourceStats->lock, LW_SHARED);
	for (i = 0; i < SourceStats->nentries; i++)
	{
		SourceStatsEntry *e = &SourceStats->entries[i];
		pid_t		pid = (pid_t) pg_atomic_read_u32(&e->pid);

		if (e->in_use && pid != 0 && kill(pid, 0) != 0)
		{
			pg_atomic_write_u32(&e->state, SOURCE_STATE_STALE);
			pg_atomic_write_u32(&e->pid, 0);
		}
	}
	LWLockRelease(SourceStats->lock);
}

/* Whether the current user may see error texts (which can quote data). */
static bool
SourceStatsMaySeeErrors(void)
{
	Oid			userid = GetUserId();
	Oid			admin;

	if (superuser() || has_privs_of_role(userid, ROLE_PG_READ_ALL_STATS))
		return true;
	admin = get_role_oid("camperso_admin", true);
	return OidIsValid(admin) && has_privs_of_role(userid, admin);
}

/* A copy of one entry, taken under the shared lock, to build a tuple from. */
typedef struct SourceStatsCopy
{
	char		source[NAMEDATALEN];
	int32		partition;
	uint32		state;
	uint32		pid;
	uint64		committed_offset;
	uint64		high_watermark;
	uint64		messages;
	uint64		bytes;
	uint64		quarantined;
	uint64		deduplicated;
	uint64		batches;
	uint64		errors;
	uint64		last_message_at;
	uint64		last_commit_at;
	uint64		last_error_at;
	uint64		dlq_produced;
	uint64		dlq_failed;
	uint64		dlq_last_error_at;
	char		last_error[STATS_ERROR_LEN];
	char		dlq_last_error[STATS_ERROR_LEN];
} SourceStatsCopy;

#define STAT_SOURCES_COLS 21

PG_FUNCTION_INFO_V1(camperso_stat_sources);

/*
 * camperso.stat_sources(): one row per (source, partition) entry; the
 * source's own row has a NULL partition and NULL per-partition figures.
 */
Datum
camperso_stat_sources(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SourceStatsCopy *copies;
	int			ncopies = 0;
	bool		see_errors;
	int			i;

	CoreRequirePreload("camperso.stat_sources");

	InitMaterializedSRF(fcinfo, 0);
	see_errors = SourceStatsMaySeeErrors();

	copies = palloc(sizeof(SourceStatsCopy) * SourceStats->nentries);
	LWLockAcquire(SourceStats->lock, LW_SHARED);
	for (i = 0; i < SourceStats->nentries; i++)
	{
		SourceStatsEntry *e = &SourceStats->entries[i];
		SourceStatsCopy *c;

		if (!e->in_use)
			continue;
		c = &copies[ncopies++];
		memcpy(c->source, e->source, NAMEDATALEN);
		c->partition = e->partition;
		c->state = pg_atomic_read_u32(&e->state);
		c->pid = pg_atomic_read_u32(&e->pid);
		c->committed_offset = pg_atomic_read_u64(&e->committed_offset);
		c->high_watermark = pg_atomic_read_u64(&e->high_watermark);
		c->messages = pg_atomic_read_u64(&e->messages);
		c->bytes = pg_atomic_read_u64(&e->bytes);
		c->quarantined = pg_atomic_read_u64(&e->quarantined);
		c->deduplicated = pg_atomic_read_u64(&e->deduplicated);
		c->batches = pg_atomic_read_u64(&e->batches);
		c->errors = pg_atomic_read_u64(&e->errors);
		c->last_message_at = pg_atomic_read_u64(&e->last_message_at);
		c->last_commit_at = pg_atomic_read_u64(&e->last_commit_at);
		c->last_error_at = pg_atomic_read_u64(&e->last_error_at);
		c->dlq_produced = pg_atomic_read_u64(&e->dlq_produced);
		c->dlq_failed = pg_atomic_read_u64(&e->dlq_failed);
		c->dlq_last_error_at = pg_atomic_read_u64(&e->dlq_last_error_at);
		SpinLockAcquire(&e->mutex);
		memcpy(c->last_error, e->last_error, STATS_ERROR_LEN);
		memcpy(c->dlq_last_error, e->dlq_last_error, STATS_ERROR_LEN);
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(SourceStats->lock);

	for (i = 0; i < ncopies; i++)
	{
		SourceStatsCopy *c = &copies[i];
		Datum		values[STAT_SOURCES_COLS];
		bool		nulls[STAT_SOURCES_COLS];
		bool		is_source_row = (c->partition == SOURCE_STATS_SOURCE_ROW);
		int			col = 0;

		memset(nulls, 0, sizeof(nulls));

		values[col++] = CStringGetTextDatum(c->source);
		if (is_source_row)
			nulls[col++] = true;
		else
			values[col++] = Int32GetDatum(c->partition);
		values[col++] = CStringGetTextDatum(c->state < lengthof(SourceStateNames) ?
											SourceStateNames[c->state] : "unknown");
		if (c->pid == 0)
			nulls[col++] = true;
		else
			values[col++] = Int32GetDatum((int32) c->pid);

		/* committed offset, high watermark, lag */
		if (is_source_row || c->committed_offset == STATS_UNKNOWN)
			nulls[col++] = true;
		else
			values[col++] = Int64GetDatum((int64) c->committed_offset);
		if (is_source_row || c->high_watermark == STATS_UNKNOWN)
			nulls[col++] = true;
		else
			values[col++] = Int64GetDatum((int64) c->high_watermark);
		if (is_source_row || c->high_watermark == STATS_UNKNOWN ||
			c->committed_offset == STATS_UNKNOWN)
			nulls[col++] = true;
		else
			values[col++] = Int64GetDatum(Max((int64) c->high_watermark -
											  (int64) c->committed_offset, 0));

		/* counters of landed messages: partition rows only */
#define COUNTER(v) \
		do { \
			if (is_source_row) \
				nulls[col++] = true; \
			else \
				values[col++] = Int64GetDatum((int64) (v)); \
		} while (0)
		COUNTER(c->messages);
		COUNTER(c->bytes);
		COUNTER(c->quarantined);
		COUNTER(c->deduplicated);
		COUNTER(c->batches);
#undef COUNTER

#define TIMESTAMP(v) \
		do { \
			if ((v) == STATS_NEVER) \
				nulls[col++] = true; \
			else \
				values[col++] = TimestampTzGetDatum((TimestampTz) (v)); \
		} while (0)
		TIMESTAMP(c->last_message_at);
		TIMESTAMP(c->last_commit_at);

#define ERROR_TEXT(v) \
		do { \
			if ((v)[0] == '\0') \
				nulls[col++] = true; \
			else if (!see_errors) \
				values[col++] = CStringGetTextDatum("<insufficient privilege>"); \
			else \
				values[col++] = CStringGetTextDatum(v); \
		} while (0)
		values[col++] = Int64GetDatum((int64) c->errors);
		ERROR_TEXT(c->last_error);
		TIMESTAMP(c->last_error_at);

		/* the dead-letter topic: source rows only */
		if (is_source_row)
		{
			values[col++] = Int64GetDatum((int64) c->dlq_produced);
			values[col++] = Int64GetDatum((int64) c->dlq_failed);
			ERROR_TEXT(c->dlq_last_error);
			TIMESTAMP(c->dlq_last_error_at);
		}
		else
		{
			nulls[col++] = true;
			nulls[col++] = true;
			nulls[col++] = true;
			nulls[col++] = true;
		}
#undef ERROR_TEXT
#undef TIMESTAMP

		Assert(col == STAT_SOURCES_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(camperso_stat_reset);

/*
 * camperso.stat_reset(source text DEFAULT NULL): zeroes the counters and
 * errors of one source, or of all; states, pids and offsets stay.
 */
Datum
camperso_stat_reset(PG_FUNCTION_ARGS)
{
	char	   *source = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			i;

	CoreRequirePreload("camperso.stat_reset");

	LWLockAcquire(SourceStats->lock, LW_SHARED);
	for (i = 0; i < SourceStats->nentries; i++)
	{
		SourceStatsEntry *e = &SourceStats->entries[i];

		if (e->in_use && (source == NULL || strcmp(e->source, source) == 0))
			SourceStatsZeroCounters(e);
	}
	LWLockRelease(SourceStats->lock);
	PG_RETURN_VOID();
}
