/*-------------------------------------------------------------------------
 *
 * dedupe.c
 *	  The state behind the "unique" rule: which keys were seen within the
 *	  window, per (ruleset, field) scope.
 *
 * Keys are 128 bits: the 16 bytes of the value when it is a uuid (so a
 * uuid column and the same uuid as JSON text agree), otherwise two 64-bit
 * hashes of the value's text under different seeds.
 *
 * Each backend keeps, per scope, an in-memory hash set of the keys seen
 * within the window: probing it is the whole per-message cost. The set is
 * durable through camperso.dedupe_keys, which holds keys in packed chunks
 * (one row per scope per transaction, 16 bytes a key), written at
 * pre-commit in the same transaction as the rows those keys let through,
 * so a rolled back batch leaves no keys behind and a committed one cannot
 * lose them.
 *
 * Protocol:
 *	- the first check of a scope in a transaction refreshes the set from
 *	  the chunks committed since the last refresh: chunks whose writer's
 *	  xid is at or above the xmin of the previous refresh's snapshot (a
 *	  transaction below that xmin had finished then, so its chunk was read
 *	  then). A chunk may be read twice; adding a key twice is harmless;
 *	- a new key goes into the set at once (a second copy later in the same
 *	  batch is a duplicate) and into the pending list tagged with its
 *	  subtransaction; a subtransaction or transaction abort takes its keys
 *	  back out of the set;
 *	- pre-commit writes the pending keys as one chunk; once a minute a
 *	  backend also deletes the scope's chunks that fell out of the window
 *	  and sweeps its set.
 *
 * Limit: two writers that land the same new key concurrently (neither has
 * committed when the other checks) both land it; replays through one
 * source partition, the normal case for an at-least-once producer, are
 * processed in order and caught. Memory: 20 to 40 bytes per key within the
 * window (16-byte slots, the hash set between 40% and 80% full), per
 * backend that uses the scope, and 24 bytes per key recorded in the
 * current transaction until it ends.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>
#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "validate/validate.h"

#define DEDUPE_KEY_BYTES	16
#define DEDUPE_EXPIRE_EVERY	((int64) 60 * USECS_PER_SEC)
#define DEDUPE_GROW_FAST_BELOW	(UINT64CONST(1) << 20)	/* slots */

typedef struct DedupeKey
{
	uint64		hi;
	uint64		lo;
} DedupeKey;

/*
 * A slot of the hash set: 16 bytes, half what a key with its own time and
 * a status byte takes. It holds 86 bits of the key (all of hi, the top 22
 * bits of lo) and, in the low 42 bits of lo, when the key was last seen:
 * milliseconds since the PostgreSQL epoch plus one (until the year 2139),
 * never 0, so an all-zero slot is empty. Two keys alike in those 86 bits
 * count as one: for n random keys within the window that happens with a
 * probability of about n^2 / 2^87 (n^2 / 2^81 for version 4 uuids, whose
 * fixed bits fall in the part kept): 4e-9 for 100 million keys. The
 * durable chunks keep all 128 bits.
 */
typedef struct DedupeSlot
{
	uint64		hi;
	uint64		lo;
} DedupeSlot;

#define DEDUPE_TIME_BITS	42
#define DEDUPE_TIME_MASK	((UINT64CONST(1) << DEDUPE_TIME_BITS) - 1)

static inline bool
SlotEmpty(const DedupeSlot *s)
{
	return s->hi == 0 && s->lo == 0;
}

static inline bool
SlotHolds(const DedupeSlot *s, DedupeKey k)
{
	return s->hi == k.hi && ((s->lo ^ k.lo) & ~DEDUPE_TIME_MASK) == 0;
}

static inline TimestampTz
SlotSeenAt(const DedupeSlot *s)
{
	return (TimestampTz) ((s->lo & DEDUPE_TIME_MASK) - 1) * 1000;
}

static inline void
SlotSetSeenAt(DedupeSlot *s, TimestampTz t)
{
	int64		ms = t / 1000 + 1;

	ms = Max(ms, 1);
	ms = Min(ms, (int64) DEDUPE_TIME_MASK);
	s->lo = (s->lo & ~DEDUPE_TIME_MASK) | (uint64) ms;
}

/* The hash of the part of a key a slot keeps. */
static inline uint64
DedupeKeyHash(DedupeKey k)
{
	uint64		x = k.hi ^ ((k.lo >> DEDUPE_TIME_BITS) * UINT64CONST(0x9E3779B97F4A7C15));

	x ^= x >> 33;
	x *= UINT64CONST(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return x;
}

static inline uint64
SlotHash(const DedupeSlot *s)
{
	DedupeKey	k = {s->hi, s->lo};

	return DedupeKeyHash(k);
}

/*
 * The clock of the time rules and of dedupe, read once per row. The exact
 * clock (gettimeofday through the vDSO) costs about 30 ns, a tenth of a
 * clean row's rules; the coarse real-time clock costs a few, and is behind
 * by about its resolution (one kernel tick, a few milliseconds), sometimes
 * more (on a virtual machine, 7 ms with a 4 ms resolution, seen), never
 * ahead. Each rule takes the lenient side of that error: max_age compares
 * against the coarse time (never later than the exact time), not_future
 * against the coarse time plus the resolution, and a row that fails it so
 * is judged again by the exact clock (engine.c), so no row fails that the
 * exact clock would pass. Where there is no coarse clock, the exact one,
 * with a resolution of 0. Kept here, outside engine.c, so the
 * rules engine's fuzzer can stand in a fixed clock (as its pg_shim does for
 * GetCurrentTimestamp).
 */
#ifdef CLOCK_REALTIME_COARSE
static int64 coarse_resolution = -1;	/* usecs; -1: not asked yet */
#endif

TimestampTz
ValidateClockNow(int64 *resolution)
{
#ifdef CLOCK_REALTIME_COARSE
	struct timespec ts;

	if (coarse_resolution < 0)
	{
		if (clock_getres(CLOCK_REALTIME_COARSE, &ts) == 0 && ts.tv_sec == 0)
			coarse_resolution = (ts.tv_nsec + 999) / 1000;
		else
			coarse_resolution = INT64_MAX;	/* unusable: exact clock */
	}
	if (coarse_resolution != INT64_MAX &&
		clock_gettime(CLOCK_REALTIME_COARSE, &ts) == 0)
	{
		*resolution = coarse_resolution;
		return time_t_to_timestamptz((pg_time_t) ts.tv_sec) + ts.tv_nsec / 1000;
	}
#endif
	*resolution = 0;
	return GetCurrentTimestamp();
}

/*
 * The hash set's memory. A set of a million keys spans tens of megabytes
 * probed at random, one TLB miss per key with 4 kB pages: large sets are
 * mapped directly and marked for transparent huge pages (a hint the kernel
 * may ignore). A header before the data says how to free it.
 */
#define DEDUPE_MAP_FROM		((Size) 4 * 1024 * 1024)
#define DEDUPE_HUGE_PAGE	((Size) 2 * 1024 * 1024)

typedef struct DedupeAllocHeader
{
	void	   *base;			/* mmap'ed region, NULL when palloc'ed */
	Size		len;
} DedupeAllocHeader;

static void *
DedupeAllocate(MemoryContext cxt, Size size)
{
	char	   *base;
	char	   *data;
	Size		len;

	if (size < DEDUPE_MAP_FROM)
	{
		base = MemoryContextAllocExtended(cxt, size + MAXALIGN(sizeof(DedupeAllocHeader)),
										  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		data = base + MAXALIGN(sizeof(DedupeAllocHeader));
		((DedupeAllocHeader *) data)[-1].base = NULL;
		return data;
	}
	len = size + DEDUPE_HUGE_PAGE + sizeof(DedupeAllocHeader);
	base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed to map %zu bytes for the keys of a unique rule.", len)));
	/* huge-page aligned, with room for the header below */
	data = (char *) TYPEALIGN(DEDUPE_HUGE_PAGE, base + sizeof(DedupeAllocHeader));
#ifdef MADV_HUGEPAGE
	(void) madvise(data, TYPEALIGN_DOWN(DEDUPE_HUGE_PAGE, size), MADV_HUGEPAGE);
#endif
	((DedupeAllocHeader *) data)[-1].base = base;
	((DedupeAllocHeader *) data)[-1].len = len;
	return data;
}

static void
DedupeFree(void *pointer)
{
	DedupeAllocHeader *h = &((DedupeAllocHeader *) pointer)[-1];

	if (h->base == NULL)
		pfree((char *) pointer - MAXALIGN(sizeof(DedupeAllocHeader)));
	else
		munmap(h->base, h->len);
}

/*
 * The set: open addressing with Robin Hood hashing (a key is never further
 * from its home slot than the key it would pass), at most 80% full. Probe
 * runs stay short at that fill, and a sparser set costs more than it
 * saves: growing zeroes the whole new array (measured at 0.5: page
 * clearing was a tenth of the trigger's time), and every probe misses the
 * cache anyway.
 */
#define DEDUPE_FILL		0.8

typedef struct DedupeSet
{
	DedupeSlot *slots;
	uint64		size;			/* a power of two */
	uint64		mask;
	uint64		members;
	uint64		grow_threshold;
} DedupeSet;

static void
DedupeSetAllocate(DedupeSet *set, MemoryContext cxt, uint64 size)
{
	set->slots = DedupeAllocate(cxt, size * sizeof(DedupeSlot));
	set->size = size;
	set->mask = size - 1;
	set->members = 0;
	set->grow_threshold = (uint64) (size * DEDUPE_FILL);
}

static inline uint64
SlotDistance(const DedupeSet *set, uint64 at)
{
	return (at - SlotHash(&set->slots[at])) & set->mask;
}

/* The slot holding key, or NULL. */
static DedupeSlot *
DedupeSetLookup(DedupeSet *set, DedupeKey key)
{
	uint64		at = DedupeKeyHash(key) & set->mask;
	uint64		dist;

	for (dist = 0;; dist++, at = (at + 1) & set->mask)
	{
		DedupeSlot *s = &set->slots[at];

		if (SlotEmpty(s) || SlotDistance(set, at) < dist)
			return NULL;
		if (SlotHolds(s, key))
			return s;
	}
}

/*
 * The slot of key, *found saying whether it was there; a new slot holds
 * the key with a seen time the caller sets. Does not grow the set.
 */
static DedupeSlot *
DedupeSetInsert(DedupeSet *set, DedupeKey key, bool *found)
{
	uint64		at = DedupeKeyHash(key) & set->mask;
	uint64		dist;

	for (dist = 0;; dist++, at = (at + 1) & set->mask)
	{
		DedupeSlot *s = &set->slots[at];

		if (!SlotEmpty(s) && SlotHolds(s, key))
		{
			*found = true;
			return s;
		}
		if (SlotEmpty(s) || SlotDistance(set, at) < dist)
		{
			/* here: shift the rest of the run one slot on, up to a gap */
			uint64		gap = at;

			while (!SlotEmpty(&set->slots[gap]))
				gap = (gap + 1) & set->mask;
			while (gap != at)
			{
				uint64		prev = (gap - 1) & set->mask;

				set->slots[gap] = set->slots[prev];
				gap = prev;
			}
			s->hi = key.hi;
			s->lo = key.lo & ~DEDUPE_TIME_MASK;
			SlotSetSeenAt(s, 0);
			set->members++;
			*found = false;
			return s;
		}
	}
}

/* Empties slot at, moving the keys after it back (no tombstones). */
static void
DedupeSetDeleteAt(DedupeSet *set, uint64 at)
{
	uint64		next = (at + 1) & set->mask;

	while (!SlotEmpty(&set->slots[next]) && SlotDistance(set, next) > 0)
	{
		set->slots[at] = set->slots[next];
		at = next;
		next = (next + 1) & set->mask;
	}
	set->slots[at].hi = 0;
	set->slots[at].lo = 0;
	set->members--;
}

static void
DedupeSetDelete(DedupeSet *set, DedupeKey key)
{
	DedupeSlot *s = DedupeSetLookup(set, key);

	if (s != NULL)
		DedupeSetDeleteAt(set, s - set->slots);
}

/* Re-homes every key in an array of newsize slots. */
static void
DedupeSetGrow(DedupeSet *set, MemoryContext cxt, uint64 newsize)
{
	DedupeSet	old = *set;
	uint64		i;

	DedupeSetAllocate(set, cxt, newsize);
	for (i = 0; i < old.size; i++)
	{
		DedupeSlot *from = &old.slots[i];
		DedupeKey	key;
		DedupeSlot *to;
		bool		found;

		if (SlotEmpty(from))
			continue;
		key.hi = from->hi;
		key.lo = from->lo;
		to = DedupeSetInsert(set, key, &found);
		to->lo = from->lo;
	}
	DedupeFree(old.slots);
}

typedef struct PendingKey
{
	DedupeKey	key;
	SubTransactionId subid;
	bool		dead;			/* taken back by ValidateDedupeUnrecord */
} PendingKey;

typedef struct ScopeKey
{
	char		ruleset[NAMEDATALEN];
	char		field[260];
} ScopeKey;

struct ValidateDedupeScope
{
	ScopeKey	id;				/* hash key */
	MemoryContext cxt;
	DedupeSet	set;
	uint64		next_xmin;		/* re-read chunks of xids >= this */
	LocalTransactionId refreshed_lxid;
	int64		window_usecs;	/* of the last check */
	PendingKey *pending;
	int			npending;
	int			maxpending;
	TimestampTz pending_from;
	TimestampTz last_expire;
	bool		listed;			/* in pending_scopes */
};

static HTAB *scopes = NULL;
static List *pending_scopes = NIL;
static SPIPlanPtr xmin_plan = NULL;
static SPIPlanPtr read_plan = NULL;
static SPIPlanPtr write_plan = NULL;
static SPIPlanPtr expire_plan = NULL;

/* The scope for (ruleset, field), created empty on first use. */
ValidateDedupeScope *
ValidateDedupeGetScope(const char *ruleset, const char *field)
{
	ScopeKey	key;
	ValidateDedupeScope *scope;
	bool		found;

	if (scopes == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ScopeKey);
		ctl.entrysize = sizeof(ValidateDedupeScope);
		ctl.hcxt = TopMemoryContext;
		scopes = hash_create("camperso dedupe scopes", 16, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	strlcpy(key.ruleset, ruleset, sizeof(key.ruleset));
	strlcpy(key.field, field, sizeof(key.field));
	scope = hash_search(scopes, &key, HASH_ENTER, &found);
	if (!found)
	{
		scope->cxt = AllocSetContextCreate(TopMemoryContext, "camperso dedupe",
										   ALLOCSET_DEFAULT_SIZES);
		DedupeSetAllocate(&scope->set, scope->cxt, 1024);
		scope->next_xmin = 0;
		scope->refreshed_lxid = InvalidLocalTransactionId;
		scope->window_usecs = 0;
		scope->maxpending = 256;
		scope->pending = MemoryContextAlloc(scope->cxt, scope->maxpending * sizeof(PendingKey));
		scope->npending = 0;
		scope->last_expire = 0;
		scope->listed = false;
	}
	return scope;
}

/* The 128-bit key of a value (see the file header). */
static DedupeKey
KeyOf(ValidateValue *v)
{
	DedupeKey	k;
	pg_uuid_t	u;
	const pg_uuid_t *up = NULL;
	char		buf[32];
	const char *text = v->text;
	int			len = v->len;

	if (v->flags & VV_HAVE_UUID)
		up = &v->uuid;
	else if (v->kind == CJ_STRING && text != NULL && (len == 36 || len == 32 || len == 38) &&
			 ValidateParseUuid(text, len, &u))
		up = &u;
	if (up != NULL)
	{
		memcpy(&k.hi, up->data, 8);
		memcpy(&k.lo, up->data + 8, 8);
		return k;
	}
	if (text == NULL)
	{
		/* typed integer without text */
		snprintf(buf, sizeof(buf), INT64_FORMAT, v->i);
		text = buf;
		len = strlen(buf);
	}
	k.hi = hash_bytes_extended((const unsigned char *) text, len, UINT64CONST(0x63616d70));
	k.lo = hash_bytes_extended((const unsigned char *) text, len, UINT64CONST(0x6572736f));
	return k;
}

/*
 * Makes room for one more key: four times the slots at once while the set
 * is small, as every growth re-inserts each key at a random place and a
 * burst of new keys (a backlog, a bulk INSERT) would pay that many times
 * over; twice the slots beyond.
 */
static inline void
MakeRoom(ValidateDedupeScope *scope)
{
	DedupeSet  *set = &scope->set;

	if (set->members + 1 >= set->grow_threshold)
		DedupeSetGrow(set, scope->cxt,
					  set->size * (set->size < DEDUPE_GROW_FAST_BELOW ? 4 : 2));
}

static void
AddKey(ValidateDedupeScope *scope, DedupeKey key, TimestampTz seen_at)
{
	bool		found;
	DedupeSlot *e;

	MakeRoom(scope);
	e = DedupeSetInsert(&scope->set, key, &found);
	if (!found || SlotSeenAt(e) < seen_at)
		SlotSetSeenAt(e, seen_at);
}

/* Reads the chunks committed since the last refresh (see file header). */
static void
Refresh(ValidateDedupeScope *scope, int64 window_usecs)
{
	ValidateSpi spi;
	Datum		args[4];
	Oid			argtypes[4] = {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID};
	uint64		new_xmin;
	uint64		r;
	bool		isnull;
	int			ret;
	TimestampTz cutoff = GetCurrentTimestamp() - window_usecs;

	ValidateSpiBegin(&spi);

	ret = SPI_execute_plan(ValidatePrepare(&xmin_plan,
								   "SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::int8",
								   0, NULL),
						   NULL, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the snapshot xmin failed: %s", SPI_result_code_string(ret));
	new_xmin = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));

	args[0] = CStringGetTextDatum(scope->id.ruleset);
	args[1] = CStringGetTextDatum(scope->id.field);
	args[2] = Int64GetDatum((int64) scope->next_xmin);
	args[3] = TimestampTzGetDatum(cutoff);
	ret = SPI_execute_plan(ValidatePrepare(&read_plan,
								   "SELECT d.keys, d.seen_to FROM camperso.dedupe_keys d"
								   " WHERE d.ruleset OPERATOR(pg_catalog.=) $1"
								   "   AND d.field OPERATOR(pg_catalog.=) $2"
								   "   AND d.xid OPERATOR(pg_catalog.>=) ($3::text)::pg_catalog.xid8"
								   "   AND d.seen_to OPERATOR(pg_catalog.>=) $4",
								   4, argtypes),
						   args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading dedupe keys failed: %s", SPI_result_code_string(ret));

	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bytea	   *keys;
		TimestampTz seen_to;
		const char *p;
		int			n;
		int			k;

		keys = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		seen_to = DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		p = VARDATA_ANY(keys);
		n = VARSIZE_ANY_EXHDR(keys) / DEDUPE_KEY_BYTES;
		for (k = 0; k < n; k++)
		{
			DedupeKey	key;

			memcpy(&key.hi, p + k * DEDUPE_KEY_BYTES, 8);
			memcpy(&key.lo, p + k * DEDUPE_KEY_BYTES + 8, 8);
			AddKey(scope, key, seen_to);
		}
	}
	ValidateSpiEnd(&spi);

	scope->next_xmin = new_xmin;
	scope->refreshed_lxid = MyProc->lxid;
}

/*
 * Whether the key of value was seen within window_usecs before now (the
 * caller's clock reading, so that a row costs one); *seen_at gets when.
 * With record, a key not seen is recorded (see file header) in the same
 * hash probe.
 */
bool
ValidateDedupeSeen(ValidateDedupeScope *scope, ValidateValue *value,
				   int64 window_usecs, bool record, TimestampTz now,
				   TimestampTz *seen_at)
{
	DedupeKey	key = KeyOf(value);
	DedupeSlot *e;
	bool		found;

	if (scope->refreshed_lxid != MyProc->lxid)
		Refresh(scope, window_usecs);
	scope->window_usecs = window_usecs;

	if (!record)
	{
		e = DedupeSetLookup(&scope->set, key);
		if (e != NULL && SlotSeenAt(e) >= now - window_usecs)
		{
			if (seen_at)
				*seen_at = SlotSeenAt(e);
			return true;
		}
		return false;
	}

	MakeRoom(scope);
	e = DedupeSetInsert(&scope->set, key, &found);
	if (found && SlotSeenAt(e) >= now - window_usecs)
	{
		if (seen_at)
			*seen_at = SlotSeenAt(e);
		return true;
	}
	SlotSetSeenAt(e, now);		/* new, or seen before the window */
	if (scope->npending == scope->maxpending)
	{
		scope->maxpending *= 2;
		scope->pending = repalloc_huge(scope->pending, (Size) scope->maxpending * sizeof(PendingKey));
	}
	if (scope->npending == 0)
		scope->pending_from = now;
	scope->pending[scope->npending].key = key;
	scope->pending[scope->npending].subid = GetCurrentSubTransactionId();
	scope->pending[scope->npending].dead = false;
	scope->npending++;
	if (!scope->listed)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		pending_scopes = lappend(pending_scopes, scope);
		MemoryContextSwitchTo(oldcxt);
		scope->listed = true;
	}
	return false;
}

/*
 * Asks the CPU for the hash slot of value's key in scope, so that the
 * cache miss overlaps the caller's other checks of the row; the later
 * ValidateDedupeSeen finds it loaded. Only a hint: no effect on results.
 */
void
ValidateDedupePrefetch(ValidateDedupeScope *scope, ValidateValue *value)
{
	if (scope->refreshed_lxid == MyProc->lxid && (value->flags & VV_HAVE_UUID))
	{
		DedupeKey	key = KeyOf(value);

		__builtin_prefetch(&scope->set.slots[DedupeKeyHash(key) & scope->set.mask]);
	}
}

/*
 * Takes back the key of value recorded in this transaction, for a message
 * that passed validation but then did not land.
 */
void
ValidateDedupeUnrecord(ValidateDedupeScope *scope, ValidateValue *value)
{
	DedupeKey	key = KeyOf(value);
	int			k;

	for (k = scope->npending - 1; k >= 0; k--)
	{
		PendingKey *p = &scope->pending[k];

		if (!p->dead && p->key.hi == key.hi && p->key.lo == key.lo)
		{
			p->dead = true;
			DedupeSetDelete(&scope->set, key);
			return;
		}
	}
}

/* Drops the set's keys that fell out of the window. */
static void
Sweep(ValidateDedupeScope *scope, TimestampTz cutoff)
{
	DedupeSet  *set = &scope->set;
	uint64		at = 0;

	/* a deletion moves the next keys back one slot: look at it again */
	while (at < set->size)
	{
		DedupeSlot *s = &set->slots[at];

		if (!SlotEmpty(s) && SlotSeenAt(s) < cutoff)
			DedupeSetDeleteAt(set, at);
		else
			at++;
	}
}

/* Pre-commit: one chunk per scope with new keys, and expiry now and then. */
static void
Flush(void)
{
	ListCell   *lc;
	ValidateSpi spi;
	bool		connected = false;
	TimestampTz now = GetCurrentTimestamp();

	foreach(lc, pending_scopes)
	{
		ValidateDedupeScope *scope = lfirst(lc);
		Datum		args[5];
		Oid			argtypes[5] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, BYTEAOID};
		bytea	   *keys;
		char	   *p;
		int			k;
		int			n = 0;
		int			ret;

		for (k = 0; k < scope->npending; k++)
			n += scope->pending[k].dead ? 0 : 1;
		if (n == 0)
			continue;
		if (!connected)
		{
			ValidateSpiBegin(&spi);
			connected = true;
		}
		keys = palloc(VARHDRSZ + (Size) n * DEDUPE_KEY_BYTES);
		SET_VARSIZE(keys, VARHDRSZ + n * DEDUPE_KEY_BYTES);
		p = VARDATA(keys);
		for (k = 0; k < scope->npending; k++)
		{
			if (scope->pending[k].dead)
				continue;
			memcpy(p, &scope->pending[k].key.hi, 8);
			memcpy(p + 8, &scope->pending[k].key.lo, 8);
			p += DEDUPE_KEY_BYTES;
		}
		args[0] = CStringGetTextDatum(scope->id.ruleset);
		args[1] = CStringGetTextDatum(scope->id.field);
		args[2] = TimestampTzGetDatum(scope->pending_from);
		args[3] = TimestampTzGetDatum(now);
		args[4] = PointerGetDatum(keys);
		ret = SPI_execute_plan(ValidatePrepare(&write_plan,
									   "INSERT INTO camperso.dedupe_keys (ruleset, field, seen_from, seen_to, nkeys, keys)"
									   " VALUES ($1, $2, $3, $4, pg_catalog.length($5) / 16, $5)",
									   5, argtypes),
							   args, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "writing dedupe keys failed: %s", SPI_result_code_string(ret));

		if (now - scope->last_expire >= DEDUPE_EXPIRE_EVERY && scope->window_usecs > 0)
		{
			Oid			exp_types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};

			args[2] = TimestampTzGetDatum(now - scope->window_usecs);
			ret = SPI_execute_plan(ValidatePrepare(&expire_plan,
										   "DELETE FROM camperso.dedupe_keys"
										   " WHERE ruleset OPERATOR(pg_catalog.=) $1"
										   "   AND field OPERATOR(pg_catalog.=) $2"
										   "   AND seen_to OPERATOR(pg_catalog.<) $3",
										   3, exp_types),
								   args, NULL, false, 0);
			if (ret != SPI_OK_DELETE)
				elog(ERROR, "expiring dedupe keys failed: %s", SPI_result_code_string(ret));
			Sweep(scope, now - scope->window_usecs);
			scope->last_expire = now;
		}
	}
	if (connected)
		ValidateSpiEnd(&spi);
}

/* Takes back the keys recorded by subtransaction subid and its children. */
static void
Forget(SubTransactionId subid)
{
	ListCell   *lc;

	foreach(lc, pending_scopes)
	{
		ValidateDedupeScope *scope = lfirst(lc);

		while (scope->npending > 0 &&
			   scope->pending[scope->npending - 1].subid >= subid)
		{
			scope->npending--;
			if (!scope->pending[scope->npending].dead)
				DedupeSetDelete(&scope->set, scope->pending[scope->npending].key);
		}
	}
}

static void
ClearPending(void)
{
	ListCell   *lc;

	foreach(lc, pending_scopes)
	{
		ValidateDedupeScope *scope = lfirst(lc);

		scope->npending = 0;
		scope->listed = false;
	}
	list_free(pending_scopes);
	pending_scopes = NIL;
}

void
ValidateDedupeXactCallback(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (pending_scopes != NIL)
				Flush();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			ClearPending();
			break;
		case XACT_EVENT_ABORT:
			Forget(InvalidSubTransactionId);
			ClearPending();
			break;
		default:
			break;
	}
}

void
ValidateDedupeSubXactAbort(SubTransactionId subid)
{
	Forget(subid);
}
