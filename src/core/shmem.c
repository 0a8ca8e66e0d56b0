/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The core shared-memory block and the preload check.
 *
 * The block is requested through the chained shmem_request_hook and set up
 * in shmem_startup_hook under AddinShmemInitLock, with the usual "found"
 * guard so that a postmaster crash-restart keeps one copy. Fields are
 * written by one owner each (see core.h), so no lock guards them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "fmgr.h"

#include "core/core.h"
#include "core/errors.h"

CampersoSharedState *CampersoShared = NULL;
bool		camperso_preloaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
CoreShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(CampersoSharedState)));
}

static void
CoreShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	CampersoShared = ShmemInitStruct("camperso core",
									 sizeof(CampersoSharedState), &found);
	if (!found)
		memset(CampersoShared, 0, sizeof(CampersoSharedState));
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shared-memory hooks; only called while preloading. */
void
CoreShmemInit(void)
{
	camperso_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = CoreShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = CoreShmemStartup;
}

/*
 * Raises a clear error when a function that needs the workers or shared
 * memory is called in a server that did not preload the library.
 */
void
CoreRequirePreload(const char *what)
{
	if (!camperso_preloaded || CampersoShared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires camperso to be loaded via shared_preload_libraries", what),
				 errdetail("The camperso background workers and shared memory exist only when the library is preloaded."),
				 errhint("Add camperso to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Wakes the launcher so it acts on a catalog change now, not at its next nap. */
void
CoreWakeLauncher(void)
{
	Latch	   *latch;

	if (CampersoShared == NULL)
		return;
	latch = CampersoShared->launcher_latch;
	if (latch != NULL)
		SetLatch(latch);
}

PG_FUNCTION_INFO_V1(camperso_launcher_pid);

/* camperso.launcher_pid(): pid of the running launcher, NULL while none runs. */
Datum
camperso_launcher_pid(PG_FUNCTION_ARGS)
{
	pid_t		pid;

	CoreRequirePreload("camperso.launcher_pid()");
	pid = CampersoShared->launcher_pid;
	if (pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32((int32) pid);
}
