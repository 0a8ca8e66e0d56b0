/*-------------------------------------------------------------------------
 *
 * drift.c
 *	  Schema drift: every distinct shape (the set of top-level key -> JSON
 *	  kind) seen per source, in camperso.schema_versions; a shape after a
 *	  source's first is drift, and stays an alert until accepted.
 *
 * Hot-path cost: a shape is a 64-bit hash, the sum of one hash per
 * (key, kind), so key order does not matter and nothing is sorted or
 * allocated per message; a backend-local hash table of known shapes counts
 * messages. The table is written at pre-commit, in the transaction of the
 * batch: at once when a shape is new to this backend, otherwise at most
 * every DRIFT_FLUSH_EVERY, with the counts gathered by the transactions
 * committed since. The counts are therefore exact for committed batches,
 * up to what a backend had not yet flushed when it exited.
 *
 * Writes are upserts in (source, hash) order, so two workers of one source
 * that meet the same new shape neither duplicate it nor deadlock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "validate/validate.h"

#define DRIFT_FLUSH_EVERY	((int64) 5 * USECS_PER_SEC)

typedef struct ShapeKey
{
	char		source[NAMEDATALEN];
	uint64		hash;
} ShapeKey;

typedef struct ShapeEntry
{
	ShapeKey	key;
	bool		in_db;			/* known to be in camperso.schema_versions */
	int64		committed;		/* messages of committed, unflushed xacts */
	int64		txn;			/* messages of the current transaction */
	TimestampTz first_seen;
	char	   *shape;			/* JSON text, while not in_db */
} ShapeEntry;

/*
 * Undo log of the current transaction's counts, one record per run of
 * messages of one shape in one subtransaction, so that a subtransaction
 * abort (the land path's careful mode retries a batch message by message)
 * takes its messages back.
 */
typedef struct ShapeDelta
{
	ShapeEntry *entry;
	SubTransactionId subid;
	int64		count;
} ShapeDelta;

static ShapeDelta *deltas = NULL;
static int	ndeltas = 0;
static int	maxdeltas = 0;

static HTAB *shapes = NULL;
static ShapeEntry *last_entry = NULL;
static TimestampTz last_flush = 0;
static bool flushed_this_xact = false;
static bool any_txn = false;
static SPIPlanPtr upsert_plan = NULL;

static const char *
KindLabel(CampersoJsonKind kind)
{
	switch (kind)
	{
		case CJ_NULL:
			return "null";
		case CJ_STRING:
			return "string";
		case CJ_NUMBER:
			return "number";
		case CJ_BOOL:
			return "boolean";
		case CJ_OBJECT:
			return "object";
		case CJ_ARRAY:
			return "array";
	}
	return "unknown";
}

static int
FieldNameCmp(const void *a, const void *b)
{
	const CampersoField *fa = *(CampersoField *const *) a;
	const CampersoField *fb = *(CampersoField *const *) b;
	int			c = strcmp(fa->name, fb->name);

	return c != 0 ? c : (int) fa->kind - (int) fb->kind;
}

/* The shape as a JSON object {"key": "kind", ...}, keys sorted. */
static char *
ShapeJson(CampersoMessage *msg)
{
	StringInfoData buf;
	CampersoField **sorted;
	int			i;

	sorted = palloc(Max(msg->nfields, 1) * sizeof(CampersoField *));
	for (i = 0; i < msg->nfields; i++)
		sorted[i] = &msg->fields[i];
	qsort(sorted, msg->nfields, sizeof(CampersoField *), FieldNameCmp);

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < msg->nfields; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, sorted[i]->name);
		appendStringInfo(&buf, ": \"%s\"", KindLabel(sorted[i]->kind));
	}
	appendStringInfoChar(&buf, '}');
	pfree(sorted);
	return buf.data;
}

void
ValidateObserveShape(const char *source, CampersoMessage *msg)
{
	uint64		h = 0x9E3779B97F4A7C15;
	int			i;
	ShapeKey	key;
	ShapeEntry *e;
	bool		found;

	for (i = 0; i < msg->nfields; i++)
	{
		const CampersoField *f = &msg->fields[i];

		h += hash_bytes_extended((const unsigned char *) f->name, f->name_len,
								 (uint64) f->kind + 1);
	}
	h = hash_combine64(h, (uint64) msg->nfields);

	if (last_entry != NULL && last_entry->key.hash == h &&
		strcmp(last_entry->key.source, source) == 0)
		e = last_entry;
	else
	{
		if (shapes == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = sizeof(ShapeKey);
			ctl.entrysize = sizeof(ShapeEntry);
			ctl.hcxt = TopMemoryContext;
			shapes = hash_create("camperso shapes", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		}
		memset(&key, 0, sizeof(key));
		strlcpy(key.source, source, NAMEDATALEN);
		key.hash = h;
		e = hash_search(shapes, &key, HASH_ENTER, &found);
		if (!found)
		{
			e->in_db = false;
			e->committed = 0;
			e->txn = 0;
			e->shape = NULL;
		}
		last_entry = e;
	}
	if (!e->in_db && e->shape == NULL)
	{
		char	   *json = ShapeJson(msg);

		e->shape = MemoryContextStrdup(TopMemoryContext, json);
		e->first_seen = GetCurrentTimestamp();
		pfree(json);
	}
	e->txn++;
	any_txn = true;

	{
		SubTransactionId subid = GetCurrentSubTransactionId();
		ShapeDelta *d = ndeltas > 0 ? &deltas[ndeltas - 1] : NULL;

		if (d == NULL || d->entry != e || d->subid != subid)
		{
			if (ndeltas == maxdeltas)
			{
				maxdeltas = Max(64, maxdeltas * 2);
				deltas = deltas ? repalloc(deltas, maxdeltas * sizeof(ShapeDelta)) :
					MemoryContextAlloc(TopMemoryContext, maxdeltas * sizeof(ShapeDelta));
			}
			d = &deltas[ndeltas++];
			d->entry = e;
			d->subid = subid;
			d->count = 0;
		}
		d->count++;
	}
}

/* Takes back the messages counted by subtransaction subid and its children. */
void
ValidateDriftSubXactAbort(SubTransactionId subid)
{
	while (ndeltas > 0 && deltas[ndeltas - 1].subid >= subid)
	{
		ShapeDelta *d = &deltas[--ndeltas];

		d->entry->txn -= d->count;
	}
}

static int
EntryCmp(const void *a, const void *b)
{
	const ShapeEntry *ea = *(ShapeEntry *const *) a;
	const ShapeEntry *eb = *(ShapeEntry *const *) b;
	int			c = strcmp(ea->key.source, eb->key.source);

	if (c != 0)
		return c;
	return (ea->key.hash > eb->key.hash) - (ea->key.hash < eb->key.hash);
}

/* Pre-commit: upserts new shapes, and the counts when they are due. */
static void
DriftFlush(void)
{
	HASH_SEQ_STATUS seq;
	ShapeEntry *e;
	ShapeEntry **due;
	int			ndue = 0;
	long		n;
	bool		any_new = false;
	TimestampTz now = GetCurrentTimestamp();
	ValidateSpi spi;
	Datum	   *src,
			   *hash,
			   *shape,
			   *first,
			   *last,
			   *count;
	bool	   *shape_null;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		args[6];
	Oid			argtypes[6] = {TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	int			i;
	int			ret;

	flushed_this_xact = false;
	n = hash_get_num_entries(shapes);
	due = palloc(Max(n, 1) * sizeof(ShapeEntry *));
	hash_seq_init(&seq, shapes);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->txn + e->committed == 0)
			continue;
		if (!e->in_db && e->txn > 0)
			any_new = true;
		due[ndue++] = e;
	}
	if (ndue == 0 || (!any_new && now - last_flush < DRIFT_FLUSH_EVERY))
	{
		pfree(due);
		return;
	}
	/* a fixed order, so that concurrent flushes lock rows alike */
	qsort(due, ndue, sizeof(ShapeEntry *), EntryCmp);

	src = palloc(ndue * sizeof(Datum));
	hash = palloc(ndue * sizeof(Datum));
	shape = palloc(ndue * sizeof(Datum));
	shape_null = palloc(ndue * sizeof(bool));
	first = palloc(ndue * sizeof(Datum));
	last = palloc(ndue * sizeof(Datum));
	count = palloc(ndue * sizeof(Datum));
	for (i = 0; i < ndue; i++)
	{
		e = due[i];
		src[i] = CStringGetTextDatum(e->key.source);
		hash[i] = Int64GetDatum((int64) e->key.hash);
		shape_null[i] = (e->shape == NULL);
		shape[i] = e->shape ? CStringGetTextDatum(e->shape) : (Datum) 0;
		first[i] = TimestampTzGetDatum(e->shape != NULL ? e->first_seen : now);
		last[i] = TimestampTzGetDatum(now);
		count[i] = Int64GetDatum(e->txn + e->committed);
	}
	dims[0] = ndue;
	args[0] = PointerGetDatum(construct_array(src, ndue, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(hash, ndue, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = PointerGetDatum(construct_md_array(shape, shape_null, 1, dims, lbs,
												 TEXTOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(first, ndue, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[4] = PointerGetDatum(construct_array(last, ndue, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[5] = PointerGetDatum(construct_array(count, ndue, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	ValidateSpiBegin(&spi);
	ret = SPI_execute_plan(ValidatePrepare(&upsert_plan,
										   "SELECT camperso._record_shapes($1, $2, $3, $4, $5, $6)",
										   6, argtypes),
						   args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "recording schema versions failed: %s", SPI_result_code_string(ret));
	ValidateSpiEnd(&spi);
	pfree(due);
	flushed_this_xact = true;
}

void
ValidateDriftXactCallback(XactEvent event)
{
	HASH_SEQ_STATUS seq;
	ShapeEntry *e;

	if (shapes == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* only transactions that landed messages write; counts of
			 * earlier ones ride along */
			if (any_txn)
				DriftFlush();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			hash_seq_init(&seq, shapes);
			while ((e = hash_seq_search(&seq)) != NULL)
			{
				if (flushed_this_xact)
				{
					if (e->shape != NULL && e->txn + e->committed > 0)
					{
						e->in_db = true;
						pfree(e->shape);
						e->shape = NULL;
					}
					e->committed = 0;
				}
				else
					e->committed += e->txn;
				e->txn = 0;
			}
			if (flushed_this_xact)
				last_flush = GetCurrentTimestamp();
			flushed_this_xact = false;
			any_txn = false;
			ndeltas = 0;
			break;
		case XACT_EVENT_ABORT:
			hash_seq_init(&seq, shapes);
			while ((e = hash_seq_search(&seq)) != NULL)
				e->txn = 0;
			flushed_this_xact = false;
			any_txn = false;
			ndeltas = 0;
			break;
		default:
			break;
	}
}
