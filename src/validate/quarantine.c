/*-------------------------------------------------------------------------
 *
 * quarantine.c
 *	  Writing to camperso.quarantine from C, and the C half of
 *	  camperso.replay_quarantine() (the SQL half, in validate.sql, walks the
 *	  rows; trigger-diverted rows are re-inserted there).
 *
 * Inserts run as the owner of the camperso schema: the role whose row is
 * diverted (a camperso_ingest client, any role inserting into a table with
 * the trigger) needs no privilege on the quarantine, and cannot read it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "validate/validate.h"

#define QUARANTINE_NARGS 13

static SPIPlanPtr insert_plan = NULL;

/*
 * Inserts one quarantine row. NULL strings (and partition/offset < 0, a
 * received_at of 0) become SQL NULLs or column defaults. payload is stored
 * byte for byte.
 */
void
ValidateQuarantineInsert(const char *source, const char *target, const char *topic,
						 int32 partition, int64 offset,
						 const char *key, int key_len, TimestampTz received_at,
						 const char *payload, int payload_len,
						 const char *ruleset, const char *rule, const char *field,
						 const char *reason, const char *app_id)
{
	Datum		args[QUARANTINE_NARGS];
	char		nulls[QUARANTINE_NARGS + 1];
	Oid			argtypes[QUARANTINE_NARGS] = {
		TEXTOID, TEXTOID, TEXTOID, INT4OID, INT8OID, BYTEAOID, TIMESTAMPTZOID,
		BYTEAOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID
	};
	bytea	   *pay;
	bytea	   *k = NULL;
	ValidateSpi spi;
	int			ret;

	memset(nulls, ' ', QUARANTINE_NARGS);
	nulls[QUARANTINE_NARGS] = '\0';

#define TEXT_ARG(i, s) \
	do { if ((s) != NULL) args[i] = CStringGetTextDatum(s); else { args[i] = (Datum) 0; nulls[i] = 'n'; } } while (0)

	TEXT_ARG(0, source);
	TEXT_ARG(1, target);
	TEXT_ARG(2, topic);
	args[3] = Int32GetDatum(partition);
	if (partition < 0)
		nulls[3] = 'n';
	args[4] = Int64GetDatum(offset);
	if (offset < 0)
		nulls[4] = 'n';
	if (key != NULL)
	{
		k = palloc(VARHDRSZ + key_len);
		SET_VARSIZE(k, VARHDRSZ + key_len);
		memcpy(VARDATA(k), key, key_len);
		args[5] = PointerGetDatum(k);
	}
	else
	{
		args[5] = (Datum) 0;
		nulls[5] = 'n';
	}
	args[6] = TimestampTzGetDatum(received_at != 0 ? received_at : GetCurrentTimestamp());
	pay = palloc(VARHDRSZ + payload_len);
	SET_VARSIZE(pay, VARHDRSZ + payload_len);
	memcpy(VARDATA(pay), payload, payload_len);
	args[7] = PointerGetDatum(pay);
	TEXT_ARG(8, ruleset);
	TEXT_ARG(9, rule);
	TEXT_ARG(10, field);
	TEXT_ARG(11, reason);
	TEXT_ARG(12, app_id);
#undef TEXT_ARG

	ValidateSpiBegin(&spi);
	ret = SPI_execute_plan(ValidatePrepare(&insert_plan,
										   "INSERT INTO camperso.quarantine"
						   " (source, target, topic, partition, \"offset\", key, received_at,"
						   "  payload, ruleset, rule, field, reason, app_id)"
										   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
										   QUARANTINE_NARGS, argtypes),
						   args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "inserting into camperso.quarantine failed: %s", SPI_result_code_string(ret));
	ValidateSpiEnd(&spi);

	pfree(pay);
	if (k)
		pfree(k);
}
