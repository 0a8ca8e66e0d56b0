/*-------------------------------------------------------------------------
 *
 * ingest.c
 *	  camperso.ingest(name, payload) and camperso.ingest_batch(name,
 *	  payloads): the land path of a source for callers without Kafka.
 *
 * Both run CaptureTargetOpen and CaptureLandBatch exactly as a source
 * worker does, in the caller's transaction, with partition and offset -1
 * (stored as NULL in metadata columns and in the quarantine). The caller's
 * own privileges apply to the target: INSERT on it is required (42501
 * otherwise). camperso.sources and camperso.quarantine are read and
 * written by the land path itself, so callers need no privilege on them:
 * EXECUTE on these functions is what is granted (to camperso_ingest and
 * camperso_admin only).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "capture/capture.h"

PG_FUNCTION_INFO_V1(camperso_ingest);
PG_FUNCTION_INFO_V1(camperso_ingest_batch);

/* Builds the (landed, quarantined, deduplicated) result row. */
static Datum
IngestResult(FunctionCallInfo fcinfo, CaptureLandResult *res)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "camperso: ingest must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Int64GetDatum(res->landed);
	values[1] = Int64GetDatum(res->quarantined);
	values[2] = Int64GetDatum(res->deduplicated);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

static char *
SourceNameArg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source name must not be null")));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

/* Fills a raw message from a bytea (which must outlive the landing). */
static void
RawFromBytea(CaptureRawMessage *m, bytea *b, TimestampTz now)
{
	m->payload = VARDATA_ANY(b);
	m->payload_len = VARSIZE_ANY_EXHDR(b);
	m->key = NULL;
	m->key_len = 0;
	m->partition = -1;
	m->offset = -1;
	m->received_at = now;
}

/* camperso.ingest(name text, payload bytea) */
Datum
camperso_ingest(PG_FUNCTION_ARGS)
{
	char	   *name = SourceNameArg(fcinfo);
	CaptureTarget *target;
	CaptureRawMessage m;
	CaptureLandResult res;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be null"),
				 errdetail("A message is a sequence of bytes; an empty one is '', not NULL.")));
	target = CaptureTargetOpen(name);
	RawFromBytea(&m, PG_GETARG_BYTEA_PP(1), GetCurrentTimestamp());
	CaptureLandBatch(target, &m, 1, &res, NULL);
	return IngestResult(fcinfo, &res);
}

/* camperso.ingest_batch(name text, payloads bytea[]) */
Datum
camperso_ingest_batch(PG_FUNCTION_ARGS)
{
	char	   *name = SourceNameArg(fcinfo);
	CaptureTarget *target;
	CaptureRawMessage *msgs;
	CaptureLandResult res;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *elemnulls;
	int			n;
	int			i;
	TimestampTz now = GetCurrentTimestamp();

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payloads must not be null")));
	arr = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("payloads must be a one-dimensional array")));
	deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &elemnulls, &n);
	for (i = 0; i < n; i++)
	{
		if (elemnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("payloads must not contain null elements"),
					 errdetail("Element %d is null.", i + 1),
					 errhint("Send an empty message as '', not NULL.")));
	}
	target = CaptureTargetOpen(name);
	msgs = palloc(Max(n, 1) * sizeof(CaptureRawMessage));
	for (i = 0; i < n; i++)
		RawFromBytea(&msgs[i], DatumGetByteaPP(elems[i]), now);
	CaptureLandBatch(target, msgs, n, &res, NULL);
	return IngestResult(fcinfo, &res);
}
