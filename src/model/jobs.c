/*-------------------------------------------------------------------------
 *
 * jobs.c
 *	  The periodic job runner: the launcher calls CampersoRunPeriodicJobs()
 *	  from its main loop, and every job of camperso.jobs that is due runs,
 *	  each in its own transaction, as its owner.
 *
 * A job's command is plain SQL (SELECT camperso.load_model('clickstream'),
 * SELECT camperso.run_maintenance(), ...). Failures are contained the way
 * TimescaleDB's job runner does it: in PG_CATCH the error is copied out of
 * the error context, the transaction aborted, and the failure recorded in a
 * new transaction, both on the job (failures, last_error, a next run pushed
 * back exponentially up to max_backoff) and as a failed run in
 * camperso.runs, since the run the job may have begun was rolled back with
 * it. A success resets the backoff. Each job's command is cancelled after
 * the job's timeout (the statement timeout timer, which the launcher's
 * transactions do not arm by themselves), and waits for a lock at most
 * camperso.job_lock_timeout (lock_timeout, local to the job's
 * transaction, unless the command sets its own): a job stuck behind a
 * lock would otherwise hold up the launcher, its other jobs and the
 * supervision of every source, for as long as the job's timeout.
 *
 * The launcher is the only caller; it is not in a transaction when calling
 * and finds none open on return. Jobs run one after the other, so a long
 * job delays the next ones (and the launcher's own supervision) by its
 * duration: keep jobs short, which incremental loads are.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "core/core.h"
#include "model/model.h"

/* Shortest time between two looks at camperso.jobs. */
#define JOBS_POLL_MS		250
/* Most jobs started in one call; the rest wait for the next call. */
#define JOBS_PER_CALL		16

/* A due job, copied out of the transaction that found it. */
typedef struct ModelJob
{
	char	   *name;
	char	   *command;
	char	   *owner;
} ModelJob;

static MemoryContext JobsContext = NULL;
static TimestampTz JobsNextPoll = 0;

/* Starts a transaction with a snapshot, for one unit of launcher work. */
static void
JobsBegin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
JobsCommit(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Reads the due jobs into JobsContext. Returns how many; 0 when the
 * extension is not installed in this database or the read failed (logged).
 */
static int
JobsFetchDue(ModelJob **jobs)
{
	volatile int njobs = 0;

	*jobs = NULL;
	JobsBegin("camperso: looking for due jobs");
	PG_TRY();
	{
		Oid			nsp = get_namespace_oid("camperso", true);

		if (OidIsValid(get_extension_oid("camperso", true)) && OidIsValid(nsp) &&
			OidIsValid(get_relname_relid("jobs", nsp)))
		{
			uint64		i;

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			if (SPI_execute("SELECT name, command, owner::text FROM camperso.jobs "
							"WHERE enabled AND next_run_at <= pg_catalog.clock_timestamp() "
							"ORDER BY next_run_at, name LIMIT " CppAsString2(JOBS_PER_CALL),
							true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read camperso.jobs");
			*jobs = MemoryContextAllocZero(JobsContext, sizeof(ModelJob) * Max(SPI_processed, 1));
			for (i = 0; i < SPI_processed; i++)
			{
				HeapTuple	tup = SPI_tuptable->vals[i];
				TupleDesc	desc = SPI_tuptable->tupdesc;

				(*jobs)[i].name = MemoryContextStrdup(JobsContext, SPI_getvalue(tup, desc, 1));
				(*jobs)[i].command = MemoryContextStrdup(JobsContext, SPI_getvalue(tup, desc, 2));
				(*jobs)[i].owner = MemoryContextStrdup(JobsContext, SPI_getvalue(tup, desc, 3));
			}
			njobs = (int) SPI_processed;
			SPI_finish();
		}
		JobsCommit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(JobsContext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		ereport(LOG,
				(errmsg("camperso launcher could not read its jobs: %s", edata->message)));
		njobs = 0;
	}
	PG_END_TRY();
	return njobs;
}

/* Runs one statement with text parameters; errors propagate. */
static int
JobsExec(const char *sql, int nargs, const char *arg1, const char *arg2)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	values[0] = arg1 ? CStringGetTextDatum(arg1) : (Datum) 0;
	values[1] = arg2 ? CStringGetTextDatum(arg2) : (Datum) 0;
	if (arg1 == NULL)
		nulls[0] = 'n';
	if (arg2 == NULL)
		nulls[1] = 'n';
	return SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
}

/*
 * Records a failed run of a job in a transaction of its own: the job's
 * backoff and error, and a failed run in camperso.runs.
 */
static void
JobsRecordFailure(ModelJob *job, const char *message)
{
	JobsBegin("camperso: recording a failed job");
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		JobsExec("UPDATE camperso.jobs SET failures = failures + 1, last_status = 'failed', last_error = $2, "
				 "last_finished_at = pg_catalog.clock_timestamp(), "
				 "next_run_at = pg_catalog.clock_timestamp() + LEAST(max_backoff, "
				 "GREATEST(run_every, interval '1 second') * pg_catalog.power(2, LEAST(failures + 1, 20))) "
				 "WHERE name = $1",
				 2, job->name, message);
		JobsExec("SELECT camperso.run_end(camperso.run_begin($1), 'failed', NULL, NULL, $2)",
				 2, job->name, message);
		SPI_finish();
		JobsCommit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(JobsContext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		ereport(LOG,
				(errmsg("camperso launcher could not record the failure of job \"%s\": %s",
						job->name, edata->message)));
	}
	PG_END_TRY();
}

/* Runs one job in its own transaction, as its owner; see the file header. */
static void
JobsRunOne(ModelJob *job)
{
	JobsBegin(job->command);
	PG_TRY();
	{
		Oid			owner;
		Oid			save_userid;
		int			save_sec;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		/* Claim it (it may have been removed or disabled meanwhile). */
		if (JobsExec("UPDATE camperso.jobs SET last_started_at = pg_catalog.clock_timestamp() "
					 "WHERE name = $1 AND enabled "
					 "RETURNING LEAST(extract(epoch FROM timeout) * 1000, 2000000000)::integer",
					 1, job->name, NULL) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not claim job \"%s\"", job->name);
		if (SPI_processed == 1)
		{
			bool		isnull;
			int32		timeout_ms = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc, 1, &isnull));

			owner = get_role_oid(job->owner, true);
			if (!OidIsValid(owner))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("owner \"%s\" of job \"%s\" does not exist", job->owner, job->name)));

			if (!isnull && timeout_ms > 0)
				enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
			if (camperso_job_lock_timeout_ms > 0)
			{
				char		value[32];

				snprintf(value, sizeof(value), "%dms", camperso_job_lock_timeout_ms);
				(void) set_config_option("lock_timeout", value, PGC_SUSET, PGC_S_SESSION,
										 GUC_ACTION_LOCAL, true, 0, false);
			}
			GetUserIdAndSecContext(&save_userid, &save_sec);
			SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
			(void) SPI_execute(job->command, false, 0);
			SetUserIdAndSecContext(save_userid, save_sec);
			disable_timeout(STATEMENT_TIMEOUT, false);

			JobsExec("UPDATE camperso.jobs SET last_status = 'success', last_error = NULL, failures = 0, "
					 "last_finished_at = pg_catalog.clock_timestamp(), "
					 "next_run_at = GREATEST(last_started_at + run_every, pg_catalog.clock_timestamp()) "
					 "WHERE name = $1",
					 1, job->name, NULL);
		}
		SPI_finish();
		JobsCommit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(JobsContext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		ereport(LOG,
				(errmsg("camperso job \"%s\" failed: %s", job->name, edata->message)));
		JobsRecordFailure(job, edata->message);
	}
	PG_END_TRY();
}

void
CampersoRunPeriodicJobs(void)
{
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext old;
	ModelJob   *jobs;
	int			njobs;
	int			i;

	if (now < JobsNextPoll)
		return;
	JobsNextPoll = TimestampTzPlusMilliseconds(now, JOBS_POLL_MS);

	if (JobsContext == NULL)
		JobsContext = AllocSetContextCreate(TopMemoryContext, "camperso jobs", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(JobsContext);

	njobs = JobsFetchDue(&jobs);
	for (i = 0; i < njobs; i++)
	{
		CHECK_FOR_INTERRUPTS();
		JobsRunOne(&jobs[i]);
		MemoryContextSwitchTo(JobsContext);
	}

	MemoryContextSwitchTo(old);
	MemoryContextReset(JobsContext);
}
