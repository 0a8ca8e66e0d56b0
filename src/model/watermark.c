/*-------------------------------------------------------------------------
 *
 * watermark.c
 *	  What the incremental load needs to read staging exactly once: the
 *	  64-bit form of a row's inserting transaction id, and the start time of
 *	  the oldest transaction still writing.
 *
 * The load reads the staging rows whose inserting transaction (xmin) is at
 * or above the previous load's snapshot xmin and not among the
 * transactions that load already read above it: every transaction below a
 * snapshot's xmin has ended, so what is below it is final, and the few
 * transactions that committed above it while an older one was still open
 * are remembered by id. Each committed row is so read by exactly one load,
 * in any commit order, and a long-open writer elsewhere does not hold the
 * loads back. (Subtransactions are no trap: a row is only read once its
 * transaction committed, and it is remembered by its own xmin.) Row xmins
 * are 32-bit; _xid_full widens them against the next transaction id to
 * compare with pg_snapshot_xmin()'s xid8.
 * Staging is partitioned and BRIN-indexed on _received_at, so the load
 * also bounds its scan by arrival time: a row still to be loaded was
 * stamped no earlier than the start of the oldest transaction writing when
 * the previous load ran (minus the capture's polling slack), which
 * _oldest_write_xact_start reports without needing the rights that
 * pg_stat_activity asks of non-superusers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/backend_status.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

PG_FUNCTION_INFO_V1(camperso_xid_full);
PG_FUNCTION_INFO_V1(camperso_oldest_write_xact_start);

/*
 * camperso._xid_full(xid) RETURNS xid8: the full transaction id of a
 * recent xid (within 2^31 transactions of the next one); the special xids
 * (bootstrap, frozen) give 0, older than any watermark.
 */
Datum
camperso_xid_full(PG_FUNCTION_ARGS)
{
	TransactionId xid = PG_GETARG_TRANSACTIONID(0);
	FullTransactionId next;
	uint32		epoch;

	if (!TransactionIdIsNormal(xid))
		PG_RETURN_FULLTRANSACTIONID(FullTransactionIdFromU64(0));
	next = ReadNextFullTransactionId();
	epoch = EpochFromFullTransactionId(next);
	if (xid > XidFromFullTransactionId(next) && epoch > 0)
		epoch--;
	PG_RETURN_FULLTRANSACTIONID(FullTransactionIdFromEpochAndXid(epoch, xid));
}

/*
 * camperso._oldest_write_xact_start() RETURNS timestamptz: the start of
 * the oldest transaction of another backend that holds a transaction id
 * (is writing), NULL when none does or activity tracking is off.
 */
Datum
camperso_oldest_write_xact_start(PG_FUNCTION_ARGS)
{
	int			n = pgstat_fetch_stat_numbackends();
	TimestampTz oldest = 0;
	bool		found = false;
	int			i;

	for (i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *l = pgstat_fetch_stat_local_beentry(i);
		TimestampTz t;

		if (l == NULL || !TransactionIdIsValid(l->backend_xid))
			continue;
		if (l->backendStatus.st_procpid == MyProcPid)
			continue;
		t = l->backendStatus.st_xact_start_timestamp;
		if (t == 0)
			continue;
		if (!found || t < oldest)
			oldest = t;
		found = true;
	}
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(oldest);
}
