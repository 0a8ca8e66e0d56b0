/*-------------------------------------------------------------------------
 *
 * core.h
 *	  Process-wide pieces every stage uses: GUC variables, the shared state
 *	  block and the "is the library preloaded" check.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_CORE_H
#define CAMPERSO_CORE_H

#include "postgres.h"
#include "storage/latch.h"

/* GUCs (guc.c) */
extern char *camperso_database;
extern int	camperso_max_workers;
extern int	camperso_batch_size;
extern int	camperso_batch_ms;
extern int	camperso_launcher_naptime_ms;
extern int	camperso_job_lock_timeout_ms;
extern int	camperso_stat_sources_max;

extern void CoreDefineGucs(bool preloading);

/*
 * State shared by every camperso process. The launcher owns launcher_pid and
 * launcher_latch; other backends only read them (under no lock: a stale pid
 * or a latch of an exited process is harmless to SetLatch on a PGPROC latch).
 */
typedef struct CampersoSharedState
{
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
} CampersoSharedState;

extern CampersoSharedState *CampersoShared;
extern bool camperso_preloaded;

extern void CoreShmemInit(void);
extern void CoreRequirePreload(const char *what);
extern void CoreWakeLauncher(void);

#endif							/* CAMPERSO_CORE_H */
