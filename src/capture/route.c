/*-------------------------------------------------------------------------
 *
 * route.c
 *	  Finds out, without raising an error, whether a row has a partition to
 *	  go to in a partitioned target, and which partitioned table lacks one.
 *
 * The executor's ExecFindPartition raises "no partition of relation found
 * for row" for a row nobody expects; that error must not abort a batch, and
 * catching it would need a subtransaction per row. So before the rows are
 * inserted, land.c asks this file: it walks the partition tree the way the
 * executor does (partition key values, then the bound search of
 * partbounds.c, then the default partition), level by level. A row it
 * finds no partition for is either given one by camperso.ensure_partition
 * (land.c) or quarantined with rule no_partition; the executor's routing
 * then never meets a row without a partition.
 *
 * Relations of the tree are opened with RowExclusiveLock (the lock the
 * insert takes anyway) outside any subtransaction and closed by
 * CaptureRouteEnd, keeping the locks to the end of the transaction.
 * Partition descriptors are read afresh at every lookup, so a partition
 * created in between by ensure_partition is seen.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/attmap.h"
#include "access/table.h"
#include "access/tupconvert.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"

#include "capture/land_internal.h"

/* One partitioned table of the tree. */
typedef struct RouteLevel
{
	Oid			relid;
	Relation	rel;
	AttrMap    *map;			/* root layout -> this table's, NULL if same */
	TupleTableSlot *slot;		/* the row in this table's layout */
	List	   *exprstates;		/* partition key expressions, if any */
} RouteLevel;

struct CaptureRouteState
{
	EState	   *estate;
	Relation	root;
	TupleTableSlot *rootslot;
	List	   *levels;			/* RouteLevel *, the root first */
};

static RouteLevel *
RouteLevelGet(CaptureRouteState *rs, Oid relid)
{
	ListCell   *lc;
	RouteLevel *level;
	PartitionKey key;
	MemoryContext old;

	foreach(lc, rs->levels)
	{
		level = lfirst(lc);
		if (level->relid == relid)
			return level;
	}
	/* levels live as long as the executor state they were made for */
	old = MemoryContextSwitchTo(rs->estate->es_query_cxt);
	level = palloc0(sizeof(RouteLevel));
	level->relid = relid;
	level->rel = (relid == RelationGetRelid(rs->root)) ? rs->root :
		table_open(relid, RowExclusiveLock);
	if (level->rel != rs->root)
	{
		level->map = build_attrmap_by_name_if_req(RelationGetDescr(rs->root),
												  RelationGetDescr(level->rel));
		level->slot = MakeSingleTupleTableSlot(RelationGetDescr(level->rel), &TTSOpsVirtual);
	}
	else
		level->slot = rs->rootslot;
	key = RelationGetPartitionKey(level->rel);
	if (key->partexprs != NIL)
		level->exprstates = ExecPrepareExprList(key->partexprs, rs->estate);
	rs->levels = lappend(rs->levels, level);
	MemoryContextSwitchTo(old);
	return level;
}

/* Starts routing checks for partitioned table rel within estate. */
CaptureRouteState *
CaptureRouteBegin(Relation rel, EState *estate)
{
	CaptureRouteState *rs = palloc0(sizeof(CaptureRouteState));

	rs->estate = estate;
	rs->root = rel;
	rs->rootslot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
	(void) RouteLevelGet(rs, RelationGetRelid(rel));
	return rs;
}

/*
 * Index in partdesc of the partition for the key values, or -1; the same
 * search the executor's routing does.
 */
static int
RouteFindIndex(PartitionKey key, PartitionDesc pd, Datum *values, bool *isnull)
{
	PartitionBoundInfo bi = pd->boundinfo;
	int			part_index = -1;
	int			i;

	if (pd->nparts == 0 || bi == NULL)
		return -1;
	switch (key->strategy)
	{
		case PARTITION_STRATEGY_HASH:
			{
				uint64		hash = compute_partition_hash_value(key->partnatts,
																key->partsupfunc,
																key->partcollation,
																values, isnull);

				part_index = bi->indexes[hash % bi->nindexes];
			}
			break;
		case PARTITION_STRATEGY_LIST:
			if (isnull[0])
			{
				if (partition_bound_accepts_nulls(bi))
					part_index = bi->null_index;
			}
			else
			{
				bool		equal = false;
				int			off = partition_list_bsearch(key->partsupfunc, key->partcollation,
														 bi, values[0], &equal);

				if (off >= 0 && equal)
					part_index = bi->indexes[off];
			}
			break;
		case PARTITION_STRATEGY_RANGE:
			{
				bool		anynull = false;

				for (i = 0; i < key->partnatts; i++)
					anynull |= isnull[i];
				if (!anynull)
				{
					bool		equal = false;
					int			off = partition_range_datum_bsearch(key->partsupfunc,
																	key->partcollation,
																	bi, key->partnatts,
																	values, &equal);

					part_index = bi->indexes[off + 1];
				}
			}
			break;
		default:
			elog(ERROR, "camperso: unexpected partition strategy %d", (int) key->strategy);
	}
	if (part_index < 0)
		part_index = bi->default_index;
	return part_index;
}

/*
 * True when the row (root layout) has a leaf partition. Otherwise false,
 * with the partitioned table that lacks one and the text of its first
 * partition key value (NULL when the value is null).
 */
bool
CaptureRouteCheck(CaptureRouteState *rs, Datum *values, bool *nulls,
				  Oid *missing_parent, char **missing_value)
{
	RouteLevel *level = linitial(rs->levels);
	ExprContext *econtext = GetPerTupleExprContext(rs->estate);
	int			natts = RelationGetDescr(rs->root)->natts;

	ExecClearTuple(rs->rootslot);
	memcpy(rs->rootslot->tts_values, values, natts * sizeof(Datum));
	memcpy(rs->rootslot->tts_isnull, nulls, natts * sizeof(bool));
	ExecStoreVirtualTuple(rs->rootslot);

	for (;;)
	{
		PartitionKey key = RelationGetPartitionKey(level->rel);
		PartitionDesc pd = RelationGetPartitionDesc(level->rel, true);
		Datum		kv[PARTITION_MAX_KEYS];
		bool		kn[PARTITION_MAX_KEYS];
		ListCell   *exprs = list_head(level->exprstates);
		TupleTableSlot *slot = level->slot;
		int			idx;
		int			i;

		if (level->rel != rs->root)
		{
			if (level->map)
				slot = execute_attr_map_slot(level->map, rs->rootslot, level->slot);
			else
			{
				ExecClearTuple(level->slot);
				slot_getallattrs(rs->rootslot);
				memcpy(level->slot->tts_values, rs->rootslot->tts_values,
					   natts * sizeof(Datum));
				memcpy(level->slot->tts_isnull, rs->rootslot->tts_isnull,
					   natts * sizeof(bool));
				ExecStoreVirtualTuple(level->slot);
				slot = level->slot;
			}
		}
		econtext->ecxt_scantuple = slot;
		for (i = 0; i < key->partnatts; i++)
		{
			AttrNumber	attno = key->partattrs[i];

			if (attno != 0)
				kv[i] = slot_getattr(slot, attno, &kn[i]);
			else
			{
				kv[i] = ExecEvalExprSwitchContext(lfirst(exprs), econtext, &kn[i]);
				exprs = lnext(level->exprstates, exprs);
			}
		}
		idx = RouteFindIndex(key, pd, kv, kn);
		if (idx < 0)
		{
			*missing_parent = level->relid;
			if (kn[0])
				*missing_value = NULL;
			else
			{
				Oid			outfunc;
				bool		varlena;

				getTypeOutputInfo(key->parttypid[0], &outfunc, &varlena);
				*missing_value = OidOutputFunctionCall(outfunc, kv[0]);
			}
			ResetExprContext(econtext);
			return false;
		}
		if (pd->is_leaf[idx])
		{
			ResetExprContext(econtext);
			return true;
		}
		level = RouteLevelGet(rs, pd->oids[idx]);
	}
}

/* Closes what routing checks opened (keeping the locks). */
void
CaptureRouteEnd(CaptureRouteState *rs)
{
	ListCell   *lc;

	foreach(lc, rs->levels)
	{
		RouteLevel *level = lfirst(lc);

		if (level->rel != rs->root)
		{
			ExecDropSingleTupleTableSlot(level->slot);
			table_close(level->rel, NoLock);
		}
	}
	ExecDropSingleTupleTableSlot(rs->rootslot);
}
