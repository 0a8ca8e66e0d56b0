/*-------------------------------------------------------------------------
 *
 * sources.c
 *	  The source admin functions: camperso.create_source, start_source,
 *	  stop_source, drop_source and reset_offsets.
 *
 * Privileges: EXECUTE is granted to camperso_admin only (sources.sql).
 * These functions check their arguments with the caller's own privileges
 * (the caller must be able to insert into the target, and becomes the
 * source's owner, whose privileges the worker uses), then write the catalog
 * as the bootstrap superuser for just that statement, so they work whatever
 * the grants on the catalog tables. A source written to the catalog
 * directly is owned by its writer (trigger in catalog.sql), so no admin can
 * forge a source that runs as someone else.
 *
 * Changes reach the launcher and the workers only when the transaction
 * commits (a transaction callback then wakes the launcher, asks running
 * workers to re-read reset offsets, and forgets the statistics of dropped
 * sources), so a rolled-back call changes nothing anywhere.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "capture/capture.h"
#include "core/core.h"
#include "core/errors.h"
#include "observe/observe.h"

/* ---------------------------------------------------------------------------
 * Acting on commit
 * ---------------------------------------------------------------------------
 */
typedef enum SourcesActionKind
{
	SOURCES_FORGET_STATS,
	SOURCES_RESYNC
} SourcesActionKind;

typedef struct SourcesAction
{
	SourcesActionKind kind;
	int			nest_level;
	char		source[NAMEDATALEN];
} SourcesAction;

static List *pending_actions = NIL; /* in TopMemoryContext */
static bool pending_wake = false;
static bool callbacks_registered = false;

static void
SourcesClearPending(void)
{
	list_free_deep(pending_actions);
	pending_actions = NIL;
	pending_wake = false;
}

static void
SourcesXactCallback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			foreach(lc, pending_actions)
			{
				SourcesAction *a = (SourcesAction *) lfirst(lc);

				if (a->kind == SOURCES_FORGET_STATS)
					SourceStatsForget(a->source);
				else
					SourceStatsRequestResync(a->source);
			}
			if (pending_wake)
				CoreWakeLauncher();
			SourcesClearPending();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			SourcesClearPending();
			break;
		default:
			break;
	}
}

/* Drops actions of an aborted subtransaction; hands a committed one's up. */
static void
SourcesSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_actions)
		{
			SourcesAction *a = (SourcesAction *) lfirst(lc);

			if (a->nest_level >= level)
			{
				pending_actions = foreach_delete_current(pending_actions, lc);
				pfree(a);
			}
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_actions)
		{
			SourcesAction *a = (SourcesAction *) lfirst(lc);

			if (a->nest_level >= level)
				a->nest_level = level - 1;
		}
	}
}

/* Queues an action for commit; the launcher is always woken then. */
static void
SourcesOnCommit(SourcesActionKind kind, const char *source)
{
	MemoryContext old;
	SourcesAction *a;

	if (!callbacks_registered)
	{
		RegisterXactCallback(SourcesXactCallback, NULL);
		RegisterSubXactCallback(SourcesSubXactCallback, NULL);
		callbacks_registered = true;
	}
	pending_wake = true;
	if (source == NULL)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	a = palloc0(sizeof(SourcesAction));
	a->kind = kind;
	a->nest_level = GetCurrentTransactionNestLevel();
	strlcpy(a->source, source, NAMEDATALEN);
	pending_actions = lappend(pending_actions, a);
	MemoryContextSwitchTo(old);
}

/* ---------------------------------------------------------------------------
 * Catalog access as the bootstrap superuser
 * ---------------------------------------------------------------------------
 */

/*
 * Runs one catalog statement as the bootstrap superuser inside SPI (the
 * caller has connected). The user switch is undone by transaction abort if
 * the statement fails.
 */
static int
SourcesCatalogExec(const char *sql, int nargs, Oid *argtypes, Datum *values,
				   const char *nulls, bool read_only)
{
	Oid			save_userid;
	int			save_sec_context;
	int			ret;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	ret = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, read_only, 0);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	return ret;
}

/* The text of column col of SPI result row; NULL for SQL NULL. */
static char *
SourcesSpiText(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/* Raises the "source does not exist" error. */
static void
SourcesNotFound(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("source \"%s\" does not exist", name),
			 errhint("camperso.sources lists the existing sources.")));
}

/* ---------------------------------------------------------------------------
 * Argument checks
 * ---------------------------------------------------------------------------
 */

/* Text argument that must not be NULL. */
static char *
SourcesArgText(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

static void
SourcesCheckName(const char *name)
{
	int			len = strlen(name);
	int			i;
	bool		ok = len >= 1 && len < NAMEDATALEN &&
		(isalpha((unsigned char) name[0]) || name[0] == '_');

	for (i = 1; ok && i < len; i++)
	{
		unsigned char c = (unsigned char) name[i];

		ok = isalnum(c) || c == '_' || c == '.' || c == '-';
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid source name \"%s\"", name),
				 errdetail("A source name starts with a letter or underscore and holds at most %d letters, digits, underscores, dots and dashes.",
						   NAMEDATALEN - 1)));
}

/* Kafka's own rule for topic names. */
static void
SourcesCheckTopic(const char *what, const char *topic)
{
	int			len = strlen(topic);
	int			i;
	bool		ok = len >= 1 && len <= 249 && strcmp(topic, ".") != 0 &&
		strcmp(topic, "..") != 0;

	for (i = 0; ok && i < len; i++)
	{
		unsigned char c = (unsigned char) topic[i];

		ok = isalnum(c) || c == '_' || c == '.' || c == '-';
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka topic name \"%s\" for %s", topic, what),
				 errdetail("A Kafka topic name holds 1 to 249 letters, digits, dots, underscores and dashes.")));
}

/* Parses an integer option (a JSON number) within [min, max]. */
static int64
SourcesOptionInt(const char *key, const char *jtype, const char *value, int64 min, int64 max)
{
	char	   *end;
	long long	v;

	errno = 0;
	end = (char *) value;
	v = strcmp(jtype, "number") == 0 ? strtoll(value, &end, 10) : 0;
	if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an integer between " INT64_FORMAT " and " INT64_FORMAT,
						key, min, max),
				 errdetail("The value given is %s.", value ? value : "null")));
	return (int64) v;
}

static void
SourcesOptionString(const char *key, const char *jtype, const char *value)
{
	if (strcmp(jtype, "string") != 0 || value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a non-empty string", key)));
}

/* The options camperso knows besides kafka.*; keep the README in step. */
static const char *const SourcesKnownOptions[] = {
	"group_id", "batch_size", "batch_ms", "dlq_topic", "start", "pii", "raw",
	"mapping", "workers", "max_message_bytes",
};

/*
 * Checks a source's options: an object of known keys with well-typed
 * values; kafka.* properties are checked by librdkafka itself, mapping keys
 * must be columns of the target; pii and raw are checked when the row is
 * written, by the security stage's trigger on camperso.sources. Raises
 * 22023/42703 on the first problem.
 */
static void
SourcesCheckOptions(Jsonb *options, Oid target, const char *topic)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(options)};
	uint64		i;
	uint64		nrows;
	char	  **keys;
	char	  **types;
	char	  **texts;

	SPI_execute_with_args("SELECT jsonb_typeof($1)", 1, argtypes, values, NULL, true, 1);
	if (strcmp(SourcesSpiText(0, 1), "object") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("For example '{\"batch_size\": 5000, \"kafka.security.protocol\": \"ssl\"}'.")));

	SPI_execute_with_args("SELECT key, jsonb_typeof(value), value #>> '{}' FROM jsonb_each($1) ORDER BY key",
						  1, argtypes, values, NULL, true, 0);
	nrows = SPI_processed;
	keys = palloc(sizeof(char *) * (nrows + 1));
	types = palloc(sizeof(char *) * (nrows + 1));
	texts = palloc(sizeof(char *) * (nrows + 1));
	for (i = 0; i < nrows; i++)
	{
		keys[i] = SourcesSpiText(i, 1);
		types[i] = SourcesSpiText(i, 2);
		texts[i] = SourcesSpiText(i, 3);
	}

	for (i = 0; i < nrows; i++)
	{
		const char *key = keys[i];
		const char *jtype = types[i];
		const char *value = texts[i] ? texts[i] : "null";
		bool		known = false;
		int			k;

		if (strncmp(key, "kafka.", 6) == 0)
		{
			char		errbuf[512];

			if (strcmp(jtype, "string") != 0 && strcmp(jtype, "number") != 0 &&
				strcmp(jtype, "boolean") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" must be a string, number or boolean", key)));
			if (!KafkaCheckProperty(key + 6, value, errbuf, sizeof(errbuf)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid Kafka option \"%s\"", key),
						 errdetail("%s", errbuf),
						 errhint("kafka.* options are librdkafka consumer properties, see its CONFIGURATION.md.")));
			continue;
		}

		for (k = 0; k < lengthof(SourcesKnownOptions); k++)
			known |= strcmp(key, SourcesKnownOptions[k]) == 0;
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown source option \"%s\"", key),
					 errhint("Known options are group_id, batch_size, batch_ms, dlq_topic, start, pii, raw, mapping, workers, max_message_bytes and kafka.<librdkafka property>.")));

		if (strcmp(key, "group_id") == 0)
			SourcesOptionString(key, jtype, value);
		else if (strcmp(key, "dlq_topic") == 0)
		{
			SourcesOptionString(key, jtype, value);
			SourcesCheckTopic("option \"dlq_topic\"", value);
			if (strcmp(value, topic) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"dlq_topic\" must not be the source's own topic \"%s\"", topic),
						 errdetail("Quarantined messages copied there would be consumed and quarantined again, forever.")));
		}
		else if (strcmp(key, "batch_size") == 0)
			(void) SourcesOptionInt(key, jtype, value, 1, 1000000);
		else if (strcmp(key, "batch_ms") == 0)
			(void) SourcesOptionInt(key, jtype, value, 1, 600000);
		else if (strcmp(key, "workers") == 0)
			(void) SourcesOptionInt(key, jtype, value, 1, 64);
		else if (strcmp(key, "max_message_bytes") == 0)
			(void) SourcesOptionInt(key, jtype, value, 1, CAPTURE_HARD_MAX_BYTES);
		else if (strcmp(key, "start") == 0)
		{
			if (strcmp(jtype, "string") != 0 ||
				(strcmp(value, "earliest") != 0 && strcmp(value, "latest") != 0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"start\" must be \"earliest\" or \"latest\"")));
		}
		else if (strcmp(key, "mapping") == 0)
		{
			Datum		sub[1];
			uint64		j;

			if (strcmp(jtype, "object") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"mapping\" must be an object of column: JSON path"),
						 errhint("For example '{\"mapping\": {\"user_id\": \"$.user.id\"}}'.")));
			sub[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(value));
			SPI_execute_with_args("SELECT key, jsonb_typeof(value) FROM jsonb_each($1)",
								  1, argtypes, sub, NULL, true, 0);
			for (j = 0; j < SPI_processed; j++)
			{
				char	   *column = SourcesSpiText(j, 1);

				if (strcmp(SourcesSpiText(j, 2), "string") != 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"mapping\" must map each column to a JSON path string")));
				if (get_attnum(target, column) == InvalidAttrNumber)
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_COLUMN),
							 errmsg("option \"mapping\" names column \"%s\", which target \"%s\" does not have",
									column, get_rel_name(target))));
			}
		}
		/* "pii" and "raw" are checked by the security stage's trigger on camperso.sources */
	}
}

/* ---------------------------------------------------------------------------
 * SQL-callable functions
 * ---------------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(camperso_create_source);

/*
 * camperso.create_source(name, brokers, topic, target, format, ruleset,
 * options): checks everything, then records a stopped source owned by the
 * caller. start_source starts it.
 */
Datum
camperso_create_source(PG_FUNCTION_ARGS)
{
	char	   *name = SourcesArgText(fcinfo, 0, "name");
	char	   *brokers = SourcesArgText(fcinfo, 1, "brokers");
	char	   *topic = SourcesArgText(fcinfo, 2, "topic");
	Oid			target;
	char	   *format = PG_ARGISNULL(4) ? pstrdup("json") : text_to_cstring(PG_GETARG_TEXT_PP(4));
	Jsonb	   *options;
	char		relkind;
	char	   *owner = GetUserNameFromId(GetUserId(), false);
	Oid			argtypes[8] = {TEXTOID, TEXTOID, TEXTOID, REGCLASSOID, TEXTOID, TEXTOID, JSONBOID, NAMEOID};
	Datum		values[8];
	char		nulls[8] = "        ";

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be NULL")));
	target = PG_GETARG_OID(3);
	options = PG_ARGISNULL(6) ? NULL : PG_GETARG_JSONB_P(6);

	SourcesCheckName(name);
	if (strspn(brokers, " \t") == strlen(brokers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("brokers must not be empty"),
				 errhint("Give the bootstrap servers as host:port[,host:port...].")));
	SourcesCheckTopic("the source", topic);

	relkind = get_rel_relkind(target);
	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target relation with OID %u does not exist", target)));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" is not a table", get_rel_name(target)),
				 errdetail("Sources land into ordinary or partitioned tables.")));
	if (IsCatalogRelationOid(target) ||
		get_rel_namespace(target) == get_namespace_oid("camperso", true))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" is a system or camperso catalog table", get_rel_name(target)),
				 errdetail("Sources land into tables of their own.")));
	if (pg_class_aclcheck(target, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to insert into target \"%s\"", get_rel_name(target)),
				 errdetail("The source's worker writes with the privileges of the role that creates it, role \"%s\".", owner),
				 errhint("Grant INSERT on the table to that role, or create the source as a role that has it.")));

	if (strcmp(format, "json") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown format \"%s\"", format),
				 errhint("The supported format is \"json\".")));

	SPI_connect();
	if (options == NULL)
		options = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	SourcesCheckOptions(options, target, topic);

	values[0] = CStringGetTextDatum(name);
	SourcesCatalogExec("SELECT 1 FROM camperso.sources WHERE name = $1",
					   1, argtypes, values, NULL, true);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("source \"%s\" already exists", name)));

	values[1] = CStringGetTextDatum(brokers);
	values[2] = CStringGetTextDatum(topic);
	values[3] = ObjectIdGetDatum(target);
	values[4] = CStringGetTextDatum(format);
	if (PG_ARGISNULL(5))
		nulls[5] = 'n';
	else
		values[5] = PG_GETARG_DATUM(5);
	values[6] = JsonbPGetDatum(options);
	values[7] = DirectFunctionCall1(namein, CStringGetDatum(owner));
	SourcesCatalogExec("INSERT INTO camperso.sources "
					   "(name, brokers, topic, target, format, ruleset, options, owner) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
					   8, argtypes, values, nulls, false);
	SPI_finish();

	SourcesOnCommit(SOURCES_FORGET_STATS, name);
	PG_RETURN_VOID();
}

/* Sets enabled on a source and wakes the launcher at commit. */
static void
SourcesSetEnabled(const char *name, bool enabled)
{
	Oid			argtypes[2] = {TEXTOID, BOOLOID};
	Datum		values[2] = {CStringGetTextDatum(name), BoolGetDatum(enabled)};

	SPI_connect();
	SourcesCatalogExec("UPDATE camperso.sources SET enabled = $2 WHERE name = $1",
					   2, argtypes, values, NULL, false);
	if (SPI_processed == 0)
		SourcesNotFound(name);
	SPI_finish();
	SourcesOnCommit(SOURCES_RESYNC, NULL);
}

PG_FUNCTION_INFO_V1(camperso_start_source);

/* camperso.start_source(name): the launcher starts its workers at commit. */
Datum
camperso_start_source(PG_FUNCTION_ARGS)
{
	CoreRequirePreload("camperso.start_source()");
	SourcesSetEnabled(SourcesArgText(fcinfo, 0, "name"), true);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(camperso_stop_source);

/* camperso.stop_source(name): the launcher stops its workers at commit. */
Datum
camperso_stop_source(PG_FUNCTION_ARGS)
{
	SourcesSetEnabled(SourcesArgText(fcinfo, 0, "name"), false);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(camperso_drop_source);

/*
 * camperso.drop_source(name): removes the source and its stored offsets;
 * its workers are stopped and its statistics forgotten at commit.
 * Landed rows and quarantined messages stay.
 */
Datum
camperso_drop_source(PG_FUNCTION_ARGS)
{
	char	   *name = SourcesArgText(fcinfo, 0, "name");
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	SPI_connect();
	SourcesCatalogExec("DELETE FROM camperso.sources WHERE name = $1",
					   1, argtypes, values, NULL, false);
	if (SPI_processed == 0)
		SourcesNotFound(name);
	SPI_finish();
	SourcesOnCommit(SOURCES_FORGET_STATS, name);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(camperso_reset_offsets);

/*
 * camperso.reset_offsets(name, partition DEFAULT NULL, offset DEFAULT
 * 'earliest'): sets where the source goes on in one partition or all,
 * 'earliest', 'latest' (asked of the brokers) or an offset number. A
 * running worker re-reads and seeks at commit; its batch in flight, if
 * any, fails the offset fence and is rolled back, so nothing is landed
 * from the old position afterwards. Returns the number of partitions set.
 */
Datum
camperso_reset_offsets(PG_FUNCTION_ARGS)
{
	char	   *name = SourcesArgText(fcinfo, 0, "name");
	int32		partition = PG_ARGISNULL(1) ? -1 : PG_GETARG_INT32(1);
	char	   *offset = SourcesArgText(fcinfo, 2, "offset");
	bool		earliest = strcmp(offset, "earliest") == 0;
	bool		latest = strcmp(offset, "latest") == 0;
	int64		number = -1;
	char	   *brokers;
	char	   *topic;
	KafkaSetting *settings;
	int			nsettings = 0;
	int32	   *partitions;
	int64	   *offsets;
	int			n;
	int			i;
	Oid			argtypes[3] = {TEXTOID, INT4OID, INT8OID};
	Datum		values[3];

	if (!PG_ARGISNULL(1) && partition < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partition must be NULL (all partitions) or at least 0")));
	if (!earliest && !latest)
	{
		char	   *end;

		errno = 0;
		number = strtoll(offset, &end, 10);
		if (errno != 0 || end == offset || *end != '\0' || number < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid offset \"%s\"", offset),
					 errhint("Give 'earliest', 'latest' or an offset number of at least 0.")));
	}

	SPI_connect();
	values[0] = CStringGetTextDatum(name);
	SourcesCatalogExec("SELECT brokers, topic FROM camperso.sources WHERE name = $1",
					   1, argtypes, values, NULL, true);
	if (SPI_processed == 0)
		SourcesNotFound(name);
	brokers = SourcesSpiText(0, 1);
	topic = SourcesSpiText(0, 2);
	SourcesCatalogExec("SELECT substr(key, 7), value #>> '{}' "
					   "FROM camperso.sources, jsonb_each(options) "
					   "WHERE name = $1 AND key LIKE 'kafka.%'",
					   1, argtypes, values, NULL, true);
	settings = palloc(sizeof(KafkaSetting) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		settings[nsettings].name = SourcesSpiText(i, 1);
		settings[nsettings].value = SourcesSpiText(i, 2);
		nsettings++;
	}

	if (number >= 0 && partition >= 0)
	{
		n = 1;
		partitions = palloc(sizeof(int32));
		offsets = palloc(sizeof(int64));
		partitions[0] = partition;
		offsets[0] = number;
	}
	else
	{
		n = KafkaQueryOffsets(brokers, topic, settings, nsettings, partition,
							  earliest, &partitions, &offsets);
		if (number >= 0)
			for (i = 0; i < n; i++)
				offsets[i] = number;
	}

	for (i = 0; i < n; i++)
	{
		values[1] = Int32GetDatum(partitions[i]);
		values[2] = Int64GetDatum(Max(offsets[i], 0));
		SourcesCatalogExec("INSERT INTO camperso.source_offsets AS o (source, partition, next_offset, reset_offset) "
						   "VALUES ($1, $2, $3, $3) "
						   "ON CONFLICT (source, partition) DO UPDATE "
						   "SET next_offset = excluded.next_offset, reset_offset = excluded.next_offset, "
						   "updated_at = now()",
						   3, argtypes, values, NULL, false);
	}
	SPI_finish();

	SourcesOnCommit(SOURCES_RESYNC, name);
	PG_RETURN_INT32(n);
}
