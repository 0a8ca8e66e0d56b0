/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The camperso launcher: one background worker per cluster, connected to
 *	  camperso.database, that supervises the source workers and runs the
 *	  periodic jobs.
 *
 * The launcher publishes its pid and latch in CampersoShared so that admin
 * functions (start/stop/drop of a source) can wake it at once; otherwise it
 * naps camperso.launcher_naptime between checks. It is registered with a
 * finite restart time, so the postmaster brings it back after a crash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"

#include "core/core.h"
#include "capture/capture.h"

/* Seconds the postmaster waits before restarting a launcher that died. */
#define LAUNCHER_RESTART_SECONDS 1

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

/* Entry point of the launcher background worker. */
void
CampersoLauncherMain(Datum main_arg)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(camperso_database, NULL, 0);

	CampersoShared->launcher_latch = &MyProc->procLatch;
	CampersoShared->launcher_pid = MyProcPid;
	before_shmem_exit(LauncherOnExit, (Datum) 0);

	ereport(LOG,
			(errmsg("camperso launcher started in database \"%s\"", camperso_database)));

	for (;;)
	{
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 camperso_launcher_naptime_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		pgstat_report_activity(STATE_IDLE, NULL);
	}
}
