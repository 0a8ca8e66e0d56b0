/*-------------------------------------------------------------------------
 *
 * persist.h
 *	  Persist stage: day (or any interval) range partitions managed by
 *	  camperso, created ahead by maintenance and on demand by loaders.
 *
 * A table is managed once camperso.partition_table() has recorded it in
 * camperso.partition_config. Partition columns are date, timestamp or
 * timestamptz; boundaries are aligned on the interval counted from
 * 2000-01-01 00:00 UTC (timestamp and date values are read as UTC), so a
 * day partition always holds one UTC day.
 *
 * Partitions are made with CREATE TABLE ... (LIKE parent) followed by
 * ATTACH PARTITION, which takes SHARE UPDATE EXCLUSIVE on the parent rather
 * than the ACCESS EXCLUSIVE lock of CREATE TABLE ... PARTITION OF: readers
 * and writers of the parent keep going while a loader makes the partition
 * for an unexpected day. Two callers making the same partition serialise
 * on that lock, and the second finds the first one's partition.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_PERSIST_H
#define CAMPERSO_PERSIST_H

#include "postgres.h"

/*
 * Returns the partition of "parent" (a table managed by partition_table)
 * that holds "value", a Datum of the partition column's type, creating and
 * attaching it in the current transaction when missing (*created says
 * which; may be NULL). Raises an error for an unmanaged table, a NULL or
 * infinite value, or when the caller may not insert into the parent.
 * Caller must be in a transaction; no lock needs to be held, and the
 * caller must not hold the parent open (a relcache reference, such as an
 * executor state inserting into it): ATTACH PARTITION refuses a table in
 * use in the session. Close it (keeping its lock), call this, reopen.
 */
extern Oid	PersistEnsurePartition(Oid parent, Datum value, bool *created);

/* Whether "parent" is recorded in camperso.partition_config. */
extern bool PersistIsManaged(Oid parent);

#endif							/* CAMPERSO_PERSIST_H */
