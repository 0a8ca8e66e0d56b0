/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Defines camperso's configuration parameters.
 *
 * Sizes that shape shared memory or the worker pool are PGC_POSTMASTER and
 * exist only when the library is preloaded (PostgreSQL refuses to create
 * them later); behaviour that an operator tunes live is PGC_SIGHUP, picked
 * up by the workers on reload.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "core/core.h"

char	   *camperso_database = NULL;
int			camperso_max_workers = 8;
int			camperso_batch_size = 10000;
int			camperso_batch_ms = 100;
int			camperso_launcher_naptime_ms = 1000;
int			camperso_job_lock_timeout_ms = 10000;
int			camperso_stat_sources_max = 1000;

/* Parameters that size shared memory or the worker pool. */
static void
CoreDefinePostmasterGucs(void)
{
	DefineCustomStringVariable("camperso.database",
							   "Database the camperso launcher connects to.",
							   "Sources, the model and the periodic jobs live in this database.",
							   &camperso_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("camperso.max_workers",
							"Maximum number of camperso source workers running at once.",
							"Each takes a slot of max_worker_processes.",
							&camperso_max_workers,
							8, 1, 256,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("camperso.stat_sources_max",
							"Number of (source, partition) entries camperso.stat_sources keeps in shared memory.",
							"Each source takes one entry plus one per partition it consumes.",
							&camperso_stat_sources_max,
							1000, 16, 1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
}

/*
 * Registers camperso's GUCs; called once from _PG_init with whether the
 * library is being preloaded.
 */
void
CoreDefineGucs(bool preloading)
{
	if (preloading)
		CoreDefinePostmasterGucs();

	DefineCustomIntVariable("camperso.batch_size",
							"Default number of messages a source writes per transaction.",
							"A source's batch_size option overrides it.",
							&camperso_batch_size,
							10000, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("camperso.batch_ms",
							"Default longest time a source waits to fill a batch.",
							"A source's batch_ms option overrides it.",
							&camperso_batch_ms,
							100, 1, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("camperso.launcher_naptime",
							"Longest time the launcher sleeps between checks.",
							"The launcher is also woken at once by start, stop and drop.",
							&camperso_launcher_naptime_ms,
							1000, 10, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("camperso.job_lock_timeout",
							"Longest wait of a periodic job for a lock.",
							"Jobs run one after another in the launcher: a job waiting for a lock "
							"would hold up the other jobs and the supervision of the sources. "
							"A job that waits longer fails and is retried with its backoff. 0 waits "
							"up to the job's timeout.",
							&camperso_job_lock_timeout_ms,
							10000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("camperso");
}
