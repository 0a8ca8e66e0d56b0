/* A BEFORE ROW trigger that does nothing: the floor of any row trigger. */
#include "postgres.h"
#include "commands/trigger.h"
#include "fmgr.h"
PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(noop_row);
Datum
noop_row(PG_FUNCTION_ARGS)
{
	return PointerGetDatum(((TriggerData *) fcinfo->context)->tg_trigtuple);
}
