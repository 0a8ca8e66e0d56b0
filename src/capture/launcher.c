/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The camperso launcher: one background worker per cluster, connected to
 *	  camperso.database, that supervises the source workers (one dynamic
 *	  background worker per enabled source and `workers` option) and runs
 *	  the periodic jobs.
 *
 * The launcher publishes its pid and latch in CampersoShared so that admin
 * functions (start/stop/drop of a source) wake it at once when they
 * commit; otherwise it naps camperso.launcher_naptime between checks. It
 * is registered with a finite restart time, so the postmaster brings it
 * back after a crash.
 *
 * Supervision. Each pass reads camperso.sources and compares the wanted
 * workers (source, index < workers) with the running ones:
 *	- a wanted worker not running is registered (bgw_notify_pid is the
 *	  launcher, so the postmaster wakes it when the worker starts or
 *	  stops), unless it is waiting out its restart backoff;
 *	- a running worker no longer wanted (source stopped or dropped, or its
 *	  definition changed) is terminated; it leaves the consumer group as
 *	  it exits;
 *	- a worker that exited on its own is restarted after a backoff that
 *	  doubles with each quick failure (1 s up to 60 s).
 *
 * The worker registry in shared memory (camperso.max_workers slots):
 * the launcher alone fills and frees a slot (in_use, generation, source,
 * index, config) and does so only while no worker runs in it; the worker
 * alone sets and clears its pid. A launcher that restarts (after SIGTERM)
 * therefore finds the workers of its predecessor there and adopts them;
 * statistics of processes that vanished meanwhile are marked stale.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "core/core.h"
#include "capture/capture.h"
#include "observe/observe.h"
#include "model/model.h"

/* Seconds the postmaster waits before restarting a launcher that died. */
#define LAUNCHER_RESTART_SECONDS 1

/* Restart backoff of source workers that exit on their own. */
#define WORKER_BACKOFF_MIN_MS	1000
#define WORKER_BACKOFF_MAX_MS	60000
/* A worker that ran this long before exiting starts its backoff afresh. */
#define WORKER_HEALTHY_MS		60000

#define CONFIG_HASH_LEN 33

/* One slot of the shared worker registry (see the file header). */
typedef struct CaptureSlot
{
	bool		in_use;
	uint32		generation;
	int32		index;
	char		source[NAMEDATALEN];
	char		config[CONFIG_HASH_LEN];
	pg_atomic_uint32 pid;
} CaptureSlot;

typedef struct CaptureSharedState
{
	int			nslots;
	CaptureSlot slots[FLEXIBLE_ARRAY_MEMBER];
} CaptureSharedState;

static CaptureSharedState *CaptureShared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The launcher's own view of a slot. */
typedef struct LauncherSlot
{
	BackgroundWorkerHandle *handle; /* NULL for a worker adopted at start */
	TimestampTz started_at;
	bool		terminating;
} LauncherSlot;

/* Restart bookkeeping per (source, index), kept while it is wanted. */
typedef struct LauncherRestartKey
{
	char		source[NAMEDATALEN];
	int32		index;
} LauncherRestartKey;

typedef struct LauncherRestart
{
	LauncherRestartKey key;
	int			failures;
	TimestampTz restart_at;
	bool		seen;			/* wanted in the current pass */
	bool		waiting_logged;
} LauncherRestart;

/* A source as read from camperso.sources in one pass. */
typedef struct LauncherSource
{
	char		name[NAMEDATALEN];
	bool		enabled;
	int			workers;
	char		config[CONFIG_HASH_LEN];
} LauncherSource;

static LauncherSlot *launcher_slots = NULL;
static HTAB *launcher_restarts = NULL;
static MemoryContext launcher_pass_context = NULL;
static uint32 launcher_generation = 0;

static Size
CaptureShmemSize(void)
{
	return add_size(offsetof(CaptureSharedState, slots),
					mul_size(camperso_max_workers, sizeof(CaptureSlot)));
}

static void
CaptureShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(CaptureShmemSize());
}

static void
CaptureShmemStartup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	CaptureShared = ShmemInitStruct("camperso worker registry",
									CaptureShmemSize(), &found);
	if (!found)
	{
		CaptureShared->nslots = camperso_max_workers;
		for (i = 0; i < CaptureShared->nslots; i++)
		{
			CaptureSlot *s = &CaptureShared->slots[i];

			s->in_use = false;
			s->generation = 0;
			s->index = 0;
			s->source[0] = '\0';
			s->config[0] = '\0';
			pg_atomic_init_u32(&s->pid, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the registry's shared-memory hooks; only called while preloading. */
void
CaptureShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = CaptureShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = CaptureShmemStartup;
}

/*
 * Called by a starting worker: records its pid in its slot if the slot
 * still holds the registration the worker was started for.
 */
bool
CaptureSlotClaim(int slot, uint32 generation, const char *source)
{
	CaptureSlot *s;

	if (CaptureShared == NULL || slot < 0 || slot >= CaptureShared->nslots)
		return false;
	s = &CaptureShared->slots[slot];
	if (!s->in_use || s->generation != generation || strcmp(s->source, source) != 0)
		return false;
	pg_atomic_write_u32(&s->pid, (uint32) MyProcPid);
	return true;
}

/* Called by an exiting worker: clears its pid from its slot. */
void
CaptureSlotRelease(int slot, uint32 generation)
{
	CaptureSlot *s;

	if (CaptureShared == NULL || slot < 0 || slot >= CaptureShared->nslots)
		return;
	s = &CaptureShared->slots[slot];
	if (s->generation == generation)
	{
		uint32		expected = (uint32) MyProcPid;

		(void) pg_atomic_compare_exchange_u32(&s->pid, &expected, 0);
	}
}

/* Registers the launcher as a static background worker; preload only. */
void
CaptureRegisterLauncher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = LAUNCHER_RESTART_SECONDS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "camperso");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "CampersoLauncherMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "camperso launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "camperso launcher");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/* Clears the launcher's published pid and latch as it exits. */
static void
LauncherOnExit(int code, Datum arg)
{
	if (CampersoShared && CampersoShared->launcher_pid == MyProcPid)
	{
		CampersoShared->launcher_latch = NULL;
		CampersoShared->launcher_pid = 0;
	}
}

/* Sets the state shown on a source's own row of camperso.stat_sources. */
static void
LauncherSetSourceState(const char *source, SourceState state, const char *error)
{
	SourceStatsEntry *e = SourceStatsAcquire(source, SOURCE_STATS_SOURCE_ROW);

	SourceStatsSetState(e, state, 0);
	if (error)
		SourceStatsError(e, error);
}

/*
 * Reads camperso.sources into an array in the pass context. Returns -1
 * when the extension is not installed in this database (nothing to run).
 * Raises on failure; the caller contains it.
 */
static int
LauncherReadSources(LauncherSource **sources)
{
	Oid			nsp;
	int			n = -1;
	uint64		i;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "camperso launcher: reading camperso.sources");

	nsp = get_namespace_oid("camperso", true);
	if (OidIsValid(nsp) && OidIsValid(get_relname_relid("sources", nsp)))
	{
		SPI_connect();
		if (SPI_execute("SELECT name, enabled, "
						"CASE WHEN jsonb_typeof(options->'workers') IN ('number', 'string') "
						"THEN (options->>'workers')::int ELSE 1 END, "
						"md5(concat_ws('|', brokers, topic, target::oid, format, ruleset, "
						"options::text, owner, created_at)) "
						"FROM camperso.sources ORDER BY name", true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read camperso.sources");
		n = (int) SPI_processed;
		*sources = MemoryContextAllocZero(launcher_pass_context,
										  sizeof(LauncherSource) * Max(n, 1));
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			LauncherSource *src = &(*sources)[i];

			strlcpy(src->name, SPI_getvalue(tup, desc, 1), NAMEDATALEN);
			src->enabled = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
			src->workers = Max(DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull)), 1);
			strlcpy(src->config, SPI_getvalue(tup, desc, 4), CONFIG_HASH_LEN);
		}
		SPI_finish();
	}

	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return n;
}

/* Whether the worker of a registry slot is still running. */
static bool
LauncherSlotAlive(int i)
{
	CaptureSlot *s = &CaptureShared->slots[i];
	LauncherSlot *ls = &launcher_slots[i];

	if (ls->handle != NULL)
	{
		pid_t		pid;

		switch (GetBackgroundWorkerPid(ls->handle, &pid))
		{
			case BGWH_STARTED:
			case BGWH_NOT_YET_STARTED:
				return true;
			case BGWH_POSTMASTER_DIED:
				proc_exit(1);
				break;
			case BGWH_STOPPED:
				return false;
		}
		return false;
	}
	else
	{
		pid_t		pid = (pid_t) pg_atomic_read_u32(&s->pid);

		return pid != 0 && kill(pid, 0) == 0;
	}
}

/* Asks the worker of a slot to stop (SIGTERM); it leaves its group cleanly. */
static void
LauncherSlotTerminate(int i)
{
	LauncherSlot *ls = &launcher_slots[i];

	if (ls->terminating)
		return;
	ls->terminating = true;
	if (ls->handle != NULL)
		TerminateBackgroundWorker(ls->handle);
	else
	{
		pid_t		pid = (pid_t) pg_atomic_read_u32(&CaptureShared->slots[i].pid);

		if (pid != 0)
			kill(pid, SIGTERM);
	}
}

/* Frees a slot whose worker is gone. */
static void
LauncherSlotFree(int i)
{
	LauncherSlot *ls = &launcher_slots[i];

	if (ls->handle != NULL)
		pfree(ls->handle);
	ls->handle = NULL;
	ls->terminating = false;
	pg_atomic_write_u32(&CaptureShared->slots[i].pid, 0);
	CaptureShared->slots[i].in_use = false;
}

/* The restart bookkeeping of (source, index), created when absent. */
static LauncherRestart *
LauncherRestartEntry(const char *source, int index)
{
	LauncherRestartKey key;
	LauncherRestart *r;
	bool		found;

	memset(&key, 0, sizeof(key));
	strlcpy(key.source, source, NAMEDATALEN);
	key.index = index;
	r = hash_search(launcher_restarts, &key, HASH_ENTER, &found);
	if (!found)
	{
		r->failures = 0;
		r->restart_at = 0;
		r->seen = false;
		r->waiting_logged = false;
	}
	return r;
}

/* Finds the source of a name in this pass's list. */
static LauncherSource *
LauncherFindSource(LauncherSource *sources, int n, const char *name)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(sources[i].name, name) == 0)
			return &sources[i];
	return NULL;
}

/* Registers the dynamic worker (source, index) in a free slot. */
static bool
LauncherStartWorker(LauncherSource *src, int index, LauncherRestart *r)
{
	BackgroundWorker worker;
	CaptureWorkerArgs args;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	int			slot = -1;
	int			i;

	for (i = 0; i < CaptureShared->nslots; i++)
	{
		if (!CaptureShared->slots[i].in_use)
		{
			slot = i;
			break;
		}
	}
	if (slot < 0)
	{
		if (!r->waiting_logged)
			ereport(LOG,
					(errmsg("camperso source \"%s\" waits for a free worker slot", src->name),
					 errhint("Raise camperso.max_workers (now %d).", camperso_max_workers)));
		r->waiting_logged = true;
		LauncherSetSourceState(src->name, SOURCE_STATE_WAITING, NULL);
		return false;
	}

	CaptureShared->slots[slot].in_use = true;
	CaptureShared->slots[slot].generation = ++launcher_generation;
	CaptureShared->slots[slot].index = index;
	strlcpy(CaptureShared->slots[slot].source, src->name, NAMEDATALEN);
	strlcpy(CaptureShared->slots[slot].config, src->config, CONFIG_HASH_LEN);
	pg_atomic_write_u32(&CaptureShared->slots[slot].pid, 0);

	memset(&args, 0, sizeof(args));
	args.database = MyDatabaseId;
	args.slot = slot;
	args.generation = launcher_generation;
	args.index = index;
	strlcpy(args.source, src->name, NAMEDATALEN);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "camperso");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "CampersoSourceWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "camperso source %s/%d", src->name, index);
	snprintf(worker.bgw_type, BGW_MAXLEN, "camperso source worker");
	worker.bgw_main_arg = Int32GetDatum(slot);
	worker.bgw_notify_pid = MyProcPid;
	StaticAssertStmt(sizeof(CaptureWorkerArgs) <= BGW_EXTRALEN, "worker args too long");
	memcpy(worker.bgw_extra, &args, sizeof(args));

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		CaptureShared->slots[slot].in_use = false;
		if (!r->waiting_logged)
			ereport(LOG,
					(errmsg("camperso source \"%s\" waits for a background worker slot", src->name),
					 errhint("Raise max_worker_processes.")));
		r->waiting_logged = true;
		LauncherSetSourceState(src->name, SOURCE_STATE_WAITING, NULL);
		return false;
	}
	MemoryContextSwitchTo(old);

	launcher_slots[slot].handle = handle;
	launcher_slots[slot].started_at = GetCurrentTimestamp();
	launcher_slots[slot].terminating = false;
	r->waiting_logged = false;
	LauncherSetSourceState(src->name, SOURCE_STATE_STARTING, NULL);
	return true;
}

/*
 * One supervision pass (see the file header). Returns how long the
 * launcher may sleep before a restart is due, in milliseconds.
 */
static long
LauncherSupervise(LauncherSource *sources, int nsources)
{
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms = camperso_launcher_naptime_ms;
	HASH_SEQ_STATUS seq;
	LauncherRestart *r;
	int			i;

	hash_seq_init(&seq, launcher_restarts);
	while ((r = hash_seq_search(&seq)) != NULL)
		r->seen = false;

	/* 1. workers that exited, and workers no longer wanted */
	for (i = 0; i < CaptureShared->nslots; i++)
	{
		CaptureSlot *s = &CaptureShared->slots[i];
		LauncherSlot *ls = &launcher_slots[i];
		LauncherSource *src;
		bool		wanted;

		if (!s->in_use)
			continue;
		src = LauncherFindSource(sources, nsources, s->source);
		wanted = src != NULL && src->enabled && s->index < src->workers &&
			strcmp(src->config, s->config) == 0;

		if (!LauncherSlotAlive(i))
		{
			if (wanted && !ls->terminating)
			{
				/* exited on its own: restart after a backoff */
				long		ran_ms = TimestampDifferenceMilliseconds(ls->started_at, now);
				long		delay;
				char		text[256];

				r = LauncherRestartEntry(s->source, s->index);
				r->failures = ran_ms >= WORKER_HEALTHY_MS ? 1 : r->failures + 1;
				delay = WORKER_BACKOFF_MIN_MS;
				for (int f = 1; f < r->failures && delay < WORKER_BACKOFF_MAX_MS; f++)
					delay *= 2;
				delay = Min(delay, WORKER_BACKOFF_MAX_MS);
				r->restart_at = TimestampTzPlusMilliseconds(now, delay);
				snprintf(text, sizeof(text),
						 "worker %d exited unexpectedly; restarting it in %ld ms", s->index, delay);
				ereport(LOG,
						(errmsg("camperso source \"%s\": %s", s->source, text)));
				LauncherSetSourceState(s->source, SOURCE_STATE_RESTARTING, text);
			}
			else if (src != NULL && !src->enabled)
				LauncherSetSourceState(s->source, SOURCE_STATE_STOPPED, NULL);
			LauncherSlotFree(i);
		}
		else if (!wanted)
			LauncherSlotTerminate(i);
	}

	/* 2. wanted workers without a slot */
	for (i = 0; i < nsources; i++)
	{
		LauncherSource *src = &sources[i];

		if (!src->enabled)
			continue;
		for (int index = 0; index < src->workers; index++)
		{
			bool		running = false;

			r = LauncherRestartEntry(src->name, index);
			r->seen = true;
			for (int j = 0; j < CaptureShared->nslots && !running; j++)
			{
				CaptureSlot *s = &CaptureShared->slots[j];

				running = s->in_use && s->index == index &&
					strcmp(s->source, src->name) == 0;
			}
			if (running)
				continue;
			if (r->restart_at > now)
			{
				sleep_ms = Min(sleep_ms, TimestampDifferenceMilliseconds(now, r->restart_at) + 1);
				continue;
			}
			if (!LauncherStartWorker(src, index, r))
				break;
		}
	}

	/* 3. forget the backoff of what is no longer wanted: a restart starts afresh */
	hash_seq_init(&seq, launcher_restarts);
	while ((r = hash_seq_search(&seq)) != NULL)
	{
		if (!r->seen)
			hash_search(launcher_restarts, &r->key, HASH_REMOVE, NULL);
	}
	return Max(sleep_ms, 1);
}

/*
 * Reconciles the registry with reality when the launcher starts: workers
 * of a previous launcher that still run are adopted (they are terminated
 * later if no longer wanted), slots of vanished ones are freed, and the
 * statistics of vanished processes are marked stale.
 */
static void
LauncherReconcile(void)
{
	int			i;

	for (i = 0; i < CaptureShared->nslots; i++)
	{
		CaptureSlot *s = &CaptureShared->slots[i];
		pid_t		pid = (pid_t) pg_atomic_read_u32(&s->pid);

		launcher_slots[i].handle = NULL;
		launcher_slots[i].terminating = false;
		launcher_slots[i].started_at = GetCurrentTimestamp();
		if (!s->in_use)
			continue;
		if (pid != 0 && kill(pid, 0) == 0)
		{
			ereport(LOG,
					(errmsg("camperso launcher adopts running worker %d of source \"%s\" (pid %d)",
							s->index, s->source, (int) pid)));
			launcher_generation = Max(launcher_generation, s->generation);
		}
		else
			LauncherSlotFree(i);
	}
	SourceStatsMarkStale();
}

/* Entry point of the launcher background worker. */
void
CampersoLauncherMain(Datum main_arg)
{
	HASHCTL		ctl;
	long		sleep_ms = 0;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(camperso_database, NULL, 0);

	CampersoShared->launcher_latch = &MyProc->procLatch;
	CampersoShared->launcher_pid = MyProcPid;
	before_shmem_exit(LauncherOnExit, (Datum) 0);

	ereport(LOG,
			(errmsg("camperso launcher started in database \"%s\"", camperso_database)));

	launcher_slots = MemoryContextAllocZero(TopMemoryContext,
											sizeof(LauncherSlot) * CaptureShared->nslots);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(LauncherRestartKey);
	ctl.entrysize = sizeof(LauncherRestart);
	ctl.hcxt = TopMemoryContext;
	launcher_restarts = hash_create("camperso launcher restarts", 64, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	launcher_pass_context = AllocSetContextCreate(TopMemoryContext,
												  "camperso launcher pass",
												  ALLOCSET_DEFAULT_SIZES);
	LauncherReconcile();

	for (;;)
	{
		LauncherSource *sources = NULL;
		int			nsources = 0;
		bool		read_ok = true;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(launcher_pass_context);

		/* a failed read (catalog locked, extension being dropped) waits a nap */
		PG_TRY();
		{
			nsources = LauncherReadSources(&sources);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(launcher_pass_context);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			ereport(LOG,
					(errmsg("camperso launcher could not read the sources: %s", edata->message)));
			read_ok = false;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(TopMemoryContext);

		/* a failed read supervises nothing: it is no reason to stop workers */
		if (!read_ok)
		{
			sleep_ms = camperso_launcher_naptime_ms;
			continue;
		}
		/* without the extension, workers of a dropped one are stopped too */
		sleep_ms = LauncherSupervise(sources, Max(nsources, 0));
		CampersoRunPeriodicJobs();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
}
