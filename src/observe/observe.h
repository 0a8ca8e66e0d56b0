/*-------------------------------------------------------------------------
 *
 * observe.h
 *	  Observability stage: the shared-memory source statistics behind
 *	  camperso.stat_sources, written by the launcher and the source workers.
 *
 * A stats entry is one (source, partition) row; partition -1 is the
 * source's own row (worker state, errors not tied to a partition). Writers
 * acquire an entry once (SourceStatsAcquire, which may take the table's
 * LWLock) and then update it without locks: every figure is an atomic.
 * Entries survive worker restarts; they live as long as the server does.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_OBSERVE_H
#define CAMPERSO_OBSERVE_H

#include "postgres.h"
#include "datatype/timestamp.h"

/* States shown in camperso.stat_sources.state; keep SourceStateNames in step. */
typedef enum SourceState
{
	SOURCE_STATE_NONE = 0,
	SOURCE_STATE_STOPPED,		/* source disabled, no worker */
	SOURCE_STATE_STARTING,		/* worker registered, not yet consuming */
	SOURCE_STATE_RUNNING,		/* worker consuming */
	SOURCE_STATE_BACKOFF,		/* worker waiting to retry a failed batch */
	SOURCE_STATE_RESTARTING,	/* worker exited; launcher restarts it later */
	SOURCE_STATE_WAITING,		/* no free worker slot (camperso.max_workers) */
	SOURCE_STATE_ASSIGNED,		/* partition: owned by a running worker */
	SOURCE_STATE_UNASSIGNED,	/* partition: owned by no worker of this server */
	SOURCE_STATE_STALE,			/* owner process is gone (found at launcher start) */
	SOURCE_STATE_DISCONNECTED	/* worker running, every broker unreachable */
} SourceState;

#define SOURCE_STATS_SOURCE_ROW (-1)

typedef struct SourceStatsEntry SourceStatsEntry;

/* source_stats.c */
extern void SourceStatsShmemInit(void);
extern SourceStatsEntry *SourceStatsAcquire(const char *source, int32 partition);
extern void SourceStatsSetState(SourceStatsEntry *entry, SourceState state, int pid);
extern void SourceStatsSetOffsets(SourceStatsEntry *entry, int64 committed, int64 high_watermark);
extern void SourceStatsCountBatch(SourceStatsEntry *entry, int64 messages, int64 bytes,
								  int64 quarantined, int64 deduplicated,
								  int64 committed, TimestampTz last_message_at,
								  TimestampTz committed_at);
extern void SourceStatsRelease(SourceStatsEntry *entry, int pid, SourceState state);
extern void SourceStatsError(SourceStatsEntry *entry, const char *text);
extern void SourceStatsCountDlq(SourceStatsEntry *entry, int64 produced, int64 failed);
extern void SourceStatsDlqError(SourceStatsEntry *entry, const char *text);
extern uint32 SourceStatsResyncGeneration(SourceStatsEntry *entry);
extern void SourceStatsRequestResync(const char *source);
extern void SourceStatsForget(const char *source);
extern void SourceStatsMarkStale(void);

#endif							/* CAMPERSO_OBSERVE_H */
