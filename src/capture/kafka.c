/*-------------------------------------------------------------------------
 *
 * kafka.c
 *	  Everything camperso does with librdkafka: checking properties when a
 *	  source is created, the source worker's consumer (subscribe, poll,
 *	  rebalance, seek, commit, close), its dead-letter producer (dlq.c)
 *	  and the watermark queries of camperso.reset_offsets(). The only file
 *	  that includes librdkafka.
 *
 * Threads: librdkafka runs its own threads, which must never touch
 * PostgreSQL (palloc, elog, latches). So
 *	- handles are created with every signal blocked, so the threads they
 *	  start inherit a full mask and SIGTERM/SIGHUP/SIGUSR1 always reach the
 *	  backend thread;
 *	- log lines are queued (log.queue) and, like errors and rebalances, are
 *	  served by rd_kafka_consumer_poll on the backend thread: every callback
 *	  below runs on the backend thread, inside KafkaConsumerPoll or
 *	  KafkaConsumerClose; the producer has no callbacks at all, its
 *	  delivery reports, errors and logs are events read by
 *	  KafkaProducerServe/Close;
 *	- message bytes are copied into the caller's memory context and the
 *	  librdkafka message is destroyed at once.
 * Callbacks must not longjmp through librdkafka's frames: the worker's
 * callbacks catch their own errors, and this file raises errors only
 * outside librdkafka calls, after releasing what it holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>

#include <librdkafka/rdkafka.h>

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "capture/capture.h"
#include "core/errors.h"

struct KafkaConsumer
{
	rd_kafka_t *rk;
	char	   *topic;
	KafkaCallbacks callbacks;
	bool		closing;
	/* the queue's caps (queued.min.messages, queued.max.messages.kbytes) */
	int64		cap_messages;
	int64		cap_bytes;
	/* messages and bytes polled since the queue last ran dry */
	int64		burst_messages;
	int64		burst_bytes;
};

/*
 * How long a poll waits on an empty queue before it wakes the fetchers
 * (KafkaWakeFetchers), and the longest it waits for the brokers' answers.
 */
#define KAFKA_WAKE_AFTER_MS		10
#define KAFKA_WAKE_TIMEOUT_MS	100

/*
 * librdkafka defaults chosen for camperso, before the source's kafka.*
 * options (which may override them): bounded prefetch so a backlog cannot
 * grow a worker's memory (a batch and a half of typical events: the worker
 * wakes the fetchers itself when the queue runs dry, see
 * KafkaWakeFetchers), and a short fetch wait so a caught-up consumer sees
 * new messages within tens of milliseconds.
 */
static const KafkaSetting KafkaDefaults[] = {
	{"queued.max.messages.kbytes", "16384"},
	{"queued.min.messages", "15000"},
	{"fetch.max.bytes", "4194304"},
	{"fetch.message.max.bytes", "1048576"},
	{"fetch.wait.max.ms", "100"},
	{"socket.nagle.disable", "true"},
};

/*
 * Properties camperso sets itself after the source's options; they carry
 * the exactly-once protocol, so create_source refuses them as kafka.*.
 */
static const char *const KafkaReserved[] = {
	"bootstrap.servers", "metadata.broker.list", "group.id",
	"enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset",
	"enable.partition.eof", "log.queue", "rebalance_cb",
};

/*
 * Creates a handle with every signal blocked (see the file header); conf
 * then belongs to it. On failure destroys conf and raises, naming what
 * (consumer, producer, client) could not be created.
 */
static rd_kafka_t *
KafkaNewHandle(rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *what)
{
	sigset_t	all;
	sigset_t	saved;
	rd_kafka_t *rk;
	char		errbuf[512];

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	rk = rd_kafka_new(type, conf, errbuf, sizeof(errbuf));
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KAFKA),
				 errmsg("could not create Kafka %s", what),
				 errdetail("librdkafka: %s", errbuf)));
	}
	return rk;
}

/*
 * Checks one librdkafka property name and value, as create_source does for
 * each kafka.* option; false with the reason in errbuf when librdkafka (or
 * camperso, for reserved names) refuses it.
 */
bool
KafkaCheckProperty(const char *name, const char *value, char *errbuf, size_t errlen)
{
	rd_kafka_conf_t *conf;
	rd_kafka_conf_res_t res;
	char		reason[512];
	int			i;

	for (i = 0; i < lengthof(KafkaReserved); i++)
	{
		if (strcmp(name, KafkaReserved[i]) == 0)
		{
			snprintf(errbuf, errlen,
					 "Property \"%s\" carries camperso's offset protocol and is set by camperso itself (see the options brokers, group_id and start).",
					 name);
			return false;
		}
	}

	conf = rd_kafka_conf_new();
	res = rd_kafka_conf_set(conf, name, value, reason, sizeof(reason));
	rd_kafka_conf_destroy(conf);
	if (res != RD_KAFKA_CONF_OK)
		snprintf(errbuf, errlen, "librdkafka: %s.", reason);
	return res == RD_KAFKA_CONF_OK;
}

/* Sets a property on conf, or destroys conf and raises an error. */
static void
KafkaConfSet(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errbuf[512];

	if (rd_kafka_conf_set(conf, name, value, errbuf, sizeof(errbuf)) != RD_KAFKA_CONF_OK)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KAFKA),
				 errmsg("invalid Kafka property \"%s\"", name),
				 errdetail("librdkafka: %s", errbuf)));
	}
}

/*
 * Builds a configuration: camperso's defaults (KafkaDefaults for consumers),
 * then the caller's settings.
 */
static rd_kafka_conf_t *
KafkaBuildConf(const KafkaSetting *defaults, int ndefaults,
			   const char *brokers, const KafkaSetting *settings, int nsettings)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int			i;

	for (i = 0; i < ndefaults; i++)
		KafkaConfSet(conf, defaults[i].name, defaults[i].value);
	for (i = 0; i < nsettings; i++)
		KafkaConfSet(conf, settings[i].name, settings[i].value);
	KafkaConfSet(conf, "bootstrap.servers", brokers);
	KafkaConfSet(conf, "log.queue", "true");
	return conf;
}

/* librdkafka log lines, served on the backend thread (log.queue). */
static void
KafkaLog(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* syslog levels: 0..3 errors, 4 warning, 5.. notice and below */
	ereport(level <= 4 ? LOG : DEBUG1,
			(errmsg_internal("librdkafka %s: %s", fac, buf)));
}

/* Writes a log event polled from a queue (event API) to the server log. */
static void
KafkaLogEvent(const rd_kafka_t *rk, rd_kafka_event_t *ev)
{
	const char *fac;
	const char *text;
	int			level;

	rd_kafka_event_log(ev, &fac, &text, &level);
	KafkaLog(rk, level, fac, text);
}

/* Client-level errors, served on the backend thread by poll. */
static void
KafkaError(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	KafkaConsumer *kc = (KafkaConsumer *) opaque;
	char		text[512];

	snprintf(text, sizeof(text), "Kafka: %s: %s",
			 rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
	if (kc != NULL && kc->callbacks.error)
		kc->callbacks.error(kc->callbacks.arg, text);
	if (kc != NULL && kc->callbacks.all_brokers_down &&
		err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		kc->callbacks.all_brokers_down(kc->callbacks.arg);
}

/* Copies the partition numbers of a list of our topic (malloc'd: no palloc here). */
static int32 *
KafkaListPartitions(KafkaConsumer *kc, rd_kafka_topic_partition_list_t *parts, int *n)
{
	int32	   *result;
	int			i;

	*n = 0;
	if (parts == NULL || parts->cnt == 0)
		return NULL;
	result = malloc(sizeof(int32) * parts->cnt);
	if (result == NULL)
		return NULL;
	for (i = 0; i < parts->cnt; i++)
	{
		if (strcmp(parts->elems[i].topic, kc->topic) == 0)
			result[(*n)++] = parts->elems[i].partition;
	}
	return result;
}

/* Adds (topic, partition) at offset with commit metadata (malloc'd: librdkafka frees it). */
static void
KafkaListAdd(rd_kafka_topic_partition_list_t *list, const char *topic, int32 partition,
			 int64 offset, const char *metadata)
{
	rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(list, topic, partition);

	tp->offset = offset;
	if (metadata != NULL && metadata[0] != '\0')
	{
		tp->metadata = strdup(metadata);
		tp->metadata_size = tp->metadata ? strlen(metadata) : 0;
	}
}

/* Applies a rebalance: asks the worker where assigned partitions start. */
static void
KafkaApplyRebalance(KafkaConsumer *kc, rd_kafka_resp_err_t err,
					rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_t *rk = kc->rk;
	bool		cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	int			n;
	int32	   *partitions;
	int			i;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		int64	   *offsets;
		int			j = 0;

		partitions = KafkaListPartitions(kc, parts, &n);
		offsets = malloc(sizeof(int64) * Max(n, 1));
		if (n > 0 && offsets != NULL && !kc->closing)
		{
			for (i = 0; i < n; i++)
				offsets[i] = KAFKA_OFFSET_DEFAULT;
			kc->callbacks.assign(kc->callbacks.arg, n, partitions, offsets);
			for (i = 0; i < parts->cnt; i++)
			{
				if (strcmp(parts->elems[i].topic, kc->topic) != 0)
					continue;
				parts->elems[i].offset = offsets[j] == KAFKA_OFFSET_DEFAULT ?
					RD_KAFKA_OFFSET_INVALID : offsets[j];
				j++;
			}
		}
		free(partitions);
		free(offsets);
		if (cooperative)
		{
			rd_kafka_error_t *error = rd_kafka_incremental_assign(rk, parts);

			if (error)
				rd_kafka_error_destroy(error);
		}
		else
			rd_kafka_assign(rk, parts);
	}
	else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
	{
		int64	   *offsets;
		char		(*metadata)[KAFKA_METADATA_LEN];

		partitions = KafkaListPartitions(kc, parts, &n);
		offsets = malloc(sizeof(int64) * Max(n, 1));
		metadata = malloc(KAFKA_METADATA_LEN * Max(n, 1));
		if (offsets == NULL || metadata == NULL)
			n = 0;
		kc->callbacks.revoke(kc->callbacks.arg, n, partitions, offsets, metadata);
		if (n > 0 && !kc->closing)
		{
			rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(n);

			for (i = 0; i < n; i++)
			{
				if (offsets[i] >= 0)
					KafkaListAdd(commit, kc->topic, partitions[i], offsets[i], metadata[i]);
			}
			/* synchronous: the new owner must see it (errors only delay it) */
			if (commit->cnt > 0)
				(void) rd_kafka_commit(rk, commit, 0);
			rd_kafka_topic_partition_list_destroy(commit);
		}
		free(partitions);
		free(offsets);
		free(metadata);
		if (cooperative)
		{
			rd_kafka_error_t *error = rd_kafka_incremental_unassign(rk, parts);

			if (error)
				rd_kafka_error_destroy(error);
		}
		else
			rd_kafka_assign(rk, NULL);
	}
	else
	{
		char		text[256];

		snprintf(text, sizeof(text), "Kafka rebalance failed: %s", rd_kafka_err2str(err));
		kc->callbacks.error(kc->callbacks.arg, text);
		kc->callbacks.revoke(kc->callbacks.arg, -1, NULL, NULL, NULL);
		rd_kafka_assign(rk, NULL);
	}
}

/* The rebalance callback, served by rd_kafka_consumer_poll on our thread. */
static void
KafkaRebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			   rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	KafkaApplyRebalance((KafkaConsumer *) opaque, err, parts);
}

/*
 * An integer property of a handle's configuration, as librdkafka took it;
 * PG_INT64_MAX / 4 (never reached) if it cannot say.
 */
static int64
KafkaConfInt(rd_kafka_t *rk, const char *name)
{
	char		value[64];
	size_t		size = sizeof(value);

	if (rd_kafka_conf_get(rd_kafka_conf(rk), name, value, &size) != RD_KAFKA_CONF_OK)
		return PG_INT64_MAX / 4;
	return strtoll(value, NULL, 10);
}

/*
 * Creates a consumer in the consumer group group_id, subscribed to topic.
 * Offsets are never committed automatically: the worker commits what it
 * has committed in PostgreSQL. The result lives in TopMemoryContext.
 */
KafkaConsumer *
KafkaConsumerOpen(const char *brokers, const char *topic, const char *group_id,
				  const char *client_id, const KafkaSetting *settings, int nsettings,
				  const KafkaCallbacks *callbacks)
{
	KafkaConsumer *kc;
	rd_kafka_conf_t *conf;
	rd_kafka_topic_partition_list_t *subscription;
	rd_kafka_resp_err_t err;

	kc = MemoryContextAllocZero(TopMemoryContext, sizeof(KafkaConsumer));
	kc->topic = MemoryContextStrdup(TopMemoryContext, topic);
	kc->callbacks = *callbacks;

	conf = KafkaBuildConf(KafkaDefaults, lengthof(KafkaDefaults), brokers, settings, nsettings);
	KafkaConfSet(conf, "group.id", group_id);
	KafkaConfSet(conf, "client.id", client_id);
	KafkaConfSet(conf, "enable.auto.commit", "false");
	KafkaConfSet(conf, "enable.auto.offset.store", "false");
	KafkaConfSet(conf, "enable.partition.eof", "false");
	rd_kafka_conf_set_opaque(conf, kc);
	rd_kafka_conf_set_log_cb(conf, KafkaLog);
	rd_kafka_conf_set_error_cb(conf, KafkaError);
	rd_kafka_conf_set_rebalance_cb(conf, KafkaRebalance);

	kc->rk = KafkaNewHandle(RD_KAFKA_CONSUMER, conf, "consumer");
	/* conf now belongs to the handle */
	rd_kafka_set_log_queue(kc->rk, NULL);
	rd_kafka_poll_set_consumer(kc->rk);
	kc->cap_messages = KafkaConfInt(kc->rk, "queued.min.messages");
	kc->cap_bytes = KafkaConfInt(kc->rk, "queued.max.messages.kbytes") * 1024;

	subscription = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(subscription, topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(kc->rk, subscription);
	rd_kafka_topic_partition_list_destroy(subscription);
	if (err)
	{
		rd_kafka_destroy(kc->rk);
		kc->rk = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KAFKA),
				 errmsg("could not subscribe to Kafka topic \"%s\"", topic),
				 errdetail("librdkafka: %s", rd_kafka_err2str(err))));
	}
	return kc;
}

/*
 * Wakes librdkafka's fetchers when they may be asleep with data to fetch.
 *
 * A broker thread stops fetching while the consumer queue is above
 * queued.min.messages or queued.max.messages.kbytes (one count for all
 * partitions of the high-level consumer) and looks again only when
 * something wakes it: a response, a request to send, or its own timer, up
 * to a second later (librdkafka 2.0; 2.1 made that fetch.queue.backoff.ms,
 * default 1000). A worker lands while its queue fills, then drains it in
 * a few milliseconds, and would idle for the rest of that second: the
 * embedded Kafka fed each worker about 20,000 messages a second so. Only a
 * prefetch of a second's worth avoided that, at tens of megabytes per
 * worker.
 *
 * So when the queue has run dry after a burst that may have filled it to
 * half a cap or more (KafkaConsumerPoll decides), and some assigned
 * partition is known to hold more (its high watermark from the last fetch
 * is above the position), this asks the leaders for those partitions' end
 * offsets: the requests wake the broker threads (one request per leader,
 * in parallel), which find the queue empty and fetch. The answers
 * themselves are not needed, so the wait for them is short. A queue that
 * runs dry after less was never near its caps: its fetchers are awake
 * (fetching is slower than landing), and extra requests would only load
 * the brokers. Safe where KafkaConsumerPoll is: it waits on a queue of its
 * own, no callback runs in it.
 */
static void
KafkaWakeFetchers(KafkaConsumer *kc)
{
	rd_kafka_topic_partition_list_t *assigned = NULL;
	rd_kafka_topic_partition_list_t *lagging;
	int			i;

	if (rd_kafka_assignment(kc->rk, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR ||
		assigned == NULL)
		return;
	if (assigned->cnt == 0 ||
		rd_kafka_position(kc->rk, assigned) != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_topic_partition_list_destroy(assigned);
		return;
	}
	lagging = rd_kafka_topic_partition_list_new(assigned->cnt);
	for (i = 0; i < assigned->cnt; i++)
	{
		rd_kafka_topic_partition_t *tp = &assigned->elems[i];
		int64_t		low = -1;
		int64_t		high = -1;

		/* no position yet: the partition's first fetch is still to come */
		if (tp->offset < 0 ||
			rd_kafka_get_watermark_offsets(kc->rk, tp->topic, tp->partition,
										   &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
			high <= tp->offset)
			continue;
		/* for offsets_for_times the offset field is a timestamp; -1: the end */
		rd_kafka_topic_partition_list_add(lagging, tp->topic, tp->partition)->offset = -1;
	}
	if (lagging->cnt > 0)
		(void) rd_kafka_offsets_for_times(kc->rk, lagging, KAFKA_WAKE_TIMEOUT_MS);
	rd_kafka_topic_partition_list_destroy(lagging);
	rd_kafka_topic_partition_list_destroy(assigned);
}

/*
 * Waits up to timeout_ms for one message and copies it into the current
 * memory context. Returns 1 with *msg filled, 0 when nothing came, -1 when
 * a consumer error arrived instead (reported to the error callback).
 * Rebalance, error and log callbacks run in here. After KAFKA_WAKE_AFTER_MS
 * on a queue drained after a burst of half a cap, the fetchers are woken.
 */
int
KafkaConsumerPoll(KafkaConsumer *kc, int timeout_ms, CaptureRawMessage *msg,
				  TimestampTz *produced_at)
{
	rd_kafka_message_t *rkm;
	rd_kafka_timestamp_type_t tstype;
	int64		ts;
	char	   *payload;
	char	   *key = NULL;

	if (kc->burst_messages < kc->cap_messages / 2 && kc->burst_bytes < kc->cap_bytes / 2)
	{
		rkm = rd_kafka_consumer_poll(kc->rk, timeout_ms);
		/* dry for a while: what comes next is a new burst */
		if (rkm == NULL && timeout_ms >= KAFKA_WAKE_AFTER_MS)
			kc->burst_messages = kc->burst_bytes = 0;
	}
	else if (timeout_ms <= KAFKA_WAKE_AFTER_MS)
		rkm = rd_kafka_consumer_poll(kc->rk, timeout_ms);	/* the next poll decides */
	else
	{
		rkm = rd_kafka_consumer_poll(kc->rk, KAFKA_WAKE_AFTER_MS);
		if (rkm == NULL)
		{
			KafkaWakeFetchers(kc);
			kc->burst_messages = kc->burst_bytes = 0;
			rkm = rd_kafka_consumer_poll(kc->rk, timeout_ms - KAFKA_WAKE_AFTER_MS);
		}
	}
	if (rkm == NULL)
		return 0;

	if (rkm->err)
	{
		char		text[512];

		if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		{
			rd_kafka_message_destroy(rkm);
			return 0;
		}
		snprintf(text, sizeof(text), "Kafka: %s: %s",
				 rd_kafka_err2name(rkm->err), rd_kafka_message_errstr(rkm));
		rd_kafka_message_destroy(rkm);
		kc->callbacks.error(kc->callbacks.arg, text);
		return -1;
	}

	kc->burst_messages++;
	kc->burst_bytes += rkm->len + rkm->key_len;

	/* copy, then let librdkafka have its buffer back at once */
	payload = palloc_extended(rkm->len + 1, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
	if (payload != NULL && rkm->key != NULL)
		key = palloc_extended(rkm->key_len + 1, MCXT_ALLOC_NO_OOM);
	if (payload == NULL || (rkm->key != NULL && key == NULL))
	{
		size_t		len = rkm->len;

		rd_kafka_message_destroy(rkm);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory copying a Kafka message of %zu bytes", len)));
	}
	if (rkm->len > 0)
		memcpy(payload, rkm->payload, rkm->len);
	payload[rkm->len] = '\0';
	msg->payload = payload;
	msg->payload_len = (int) rkm->len;
	if (key != NULL)
	{
		memcpy(key, rkm->key, rkm->key_len);
		key[rkm->key_len] = '\0';
		msg->key = key;
		msg->key_len = (int) rkm->key_len;
	}
	else
	{
		msg->key = NULL;
		msg->key_len = 0;
	}
	msg->partition = rkm->partition;
	msg->offset = rkm->offset;

	ts = rd_kafka_message_timestamp(rkm, &tstype);
	if (ts >= 0 && tstype != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
		*produced_at = (TimestampTz) (ts * 1000 -
									  ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY));
	else
		*produced_at = 0;
	rd_kafka_message_destroy(rkm);
	return 1;
}

/* Builds a partition list of our topic; caller destroys it. */
static rd_kafka_topic_partition_list_t *
KafkaMakeList(KafkaConsumer *kc, int n, const int32 *partitions, const int64 *offsets)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		rd_kafka_topic_partition_t *tp =
			rd_kafka_topic_partition_list_add(list, kc->topic, partitions[i]);

		tp->offset = offsets[i];
	}
	return list;
}

/*
 * Moves the fetch position of assigned partitions; prefetched messages of
 * those partitions are dropped by librdkafka. Errors (such as a partition
 * revoked meanwhile) are reported to the error callback and otherwise
 * ignored: the next rebalance sets positions again.
 */
void
KafkaConsumerSeek(KafkaConsumer *kc, int n, const int32 *partitions, const int64 *offsets)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_error_t *error;

	if (n <= 0)
		return;
	list = KafkaMakeList(kc, n, partitions, offsets);
	error = rd_kafka_seek_partitions(kc->rk, list, 5000);
	if (error)
	{
		char		text[512];

		snprintf(text, sizeof(text), "Kafka seek: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		kc->callbacks.error(kc->callbacks.arg, text);
	}
	rd_kafka_topic_partition_list_destroy(list);
}

/*
 * Commits next offsets to Kafka asynchronously, after they are committed in
 * PostgreSQL: for lag tools and for a consumer of another server that takes
 * a partition over. A failed commit only delays that; nothing is lost.
 */
void
KafkaConsumerCommit(KafkaConsumer *kc, int n, const int32 *partitions,
					const int64 *next_offsets, char (*metadata)[KAFKA_METADATA_LEN])
{
	rd_kafka_topic_partition_list_t *list;
	int			i;

	if (n <= 0)
		return;
	list = rd_kafka_topic_partition_list_new(n);
	for (i = 0; i < n; i++)
		KafkaListAdd(list, kc->topic, partitions[i], next_offsets[i], metadata[i]);
	(void) rd_kafka_commit(kc->rk, list, 1);
	rd_kafka_topic_partition_list_destroy(list);
}

/*
 * The group's committed offsets in Kafka of some partitions, -1 where there
 * is none or the coordinator does not answer within a few seconds. Safe in
 * the assign callback (it waits on a queue of its own).
 */
void
KafkaConsumerCommitted(KafkaConsumer *kc, int n, const int32 *partitions, int64 *offsets,
					   char (*metadata)[KAFKA_METADATA_LEN])
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;
	int			i;

	for (i = 0; i < n; i++)
	{
		offsets[i] = -1;
		metadata[i][0] = '\0';
	}
	if (n <= 0)
		return;
	list = rd_kafka_topic_partition_list_new(n);
	for (i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, kc->topic, partitions[i]);
	err = rd_kafka_committed(kc->rk, list, 5000);
	if (!err)
	{
		for (i = 0; i < list->cnt; i++)
		{
			rd_kafka_topic_partition_t *tp = &list->elems[i];
			int			j;

			if (tp->err || tp->offset < 0)
				continue;
			/* librdkafka may reorder the list: match by partition */
			for (j = 0; j < n; j++)
			{
				if (partitions[j] != tp->partition)
					continue;
				offsets[j] = tp->offset;
				if (tp->metadata != NULL && tp->metadata_size > 0)
				{
					size_t		len = Min(tp->metadata_size, KAFKA_METADATA_LEN - 1);

					memcpy(metadata[j], tp->metadata, len);
					metadata[j][len] = '\0';
				}
			}
		}
	}
	rd_kafka_topic_partition_list_destroy(list);
}

/* The high watermark librdkafka last saw for a partition, -1 if unknown. */
int64
KafkaConsumerHighWatermark(KafkaConsumer *kc, int32 partition)
{
	int64_t		low = -1;
	int64_t		high = -1;

	if (rd_kafka_get_watermark_offsets(kc->rk, kc->topic, partition, &low, &high) != 0 ||
		high < 0)
		return -1;
	return high;
}

/*
 * Serves the log lines still queued on a closed consumer's queue (where
 * log.queue and rd_kafka_poll_set_consumer route them), so what librdkafka
 * said while closing, such as the LeaveGroup answer, reaches the server log
 * before the handle is destroyed; anything else queued there (prefetched
 * messages) is dropped, as nothing of it was landed or stored.
 */
static void
KafkaDrainLogLines(rd_kafka_t *rk)
{
	rd_kafka_queue_t *consumer_queue = rd_kafka_queue_get_consumer(rk);
	rd_kafka_event_t *ev;
	int			budget = 100000;

	if (consumer_queue == NULL)
		return;
	while (budget-- > 0 && (ev = rd_kafka_queue_poll(consumer_queue, 0)) != NULL)
	{
		if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LOG)
			KafkaLogEvent(rk, ev);
		rd_kafka_event_destroy(ev);
	}
	rd_kafka_queue_destroy(consumer_queue);
}

/*
 * The high watermark of a partition asked of its leader, -1 when it does
 * not answer within timeout_ms. Serves no callback.
 */
int64
KafkaConsumerQueryHighWatermark(KafkaConsumer *kc, int32 partition, int timeout_ms)
{
	int64_t		low = -1;
	int64_t		high = -1;

	if (rd_kafka_query_watermark_offsets(kc->rk, kc->topic, partition, &low, &high,
										 timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	return high;
}

/*
 * Whether a broker answers a metadata request within timeout_ms. librdkafka
 * reports that every broker went down but not that one came back, so a
 * worker that saw them go down asks now and then while it has nothing to
 * consume. Serves no callback.
 */
bool
KafkaConsumerProbe(KafkaConsumer *kc, int timeout_ms)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err;

	err = rd_kafka_metadata(kc->rk, 0, NULL, &md, timeout_ms);
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/*
 * Leaves the consumer group (so the partitions move at once, not after the
 * session timeout) and destroys the handle, waiting at most timeout_ms for
 * the group to acknowledge. Safe to call from a shmem-exit callback.
 */
void
KafkaConsumerClose(KafkaConsumer *kc, int timeout_ms)
{
	rd_kafka_queue_t *queue;
	rd_kafka_error_t *error;
	TimestampTz deadline;

	if (kc == NULL || kc->rk == NULL)
		return;
	kc->closing = true;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	queue = rd_kafka_queue_new(kc->rk);
	error = rd_kafka_consumer_close_queue(kc->rk, queue);
	if (error)
		rd_kafka_error_destroy(error);
	else
	{
		while (!rd_kafka_consumer_closed(kc->rk) &&
			   GetCurrentTimestamp() < deadline)
		{
			rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, 50);

			if (ev == NULL)
				continue;
			if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LOG)
				KafkaLogEvent(kc->rk, ev);
			if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
				KafkaApplyRebalance(kc, rd_kafka_event_error(ev),
									rd_kafka_event_topic_partition_list(ev));
			rd_kafka_event_destroy(ev);
		}
	}
	rd_kafka_queue_destroy(queue);
	KafkaDrainLogLines(kc->rk);
	rd_kafka_destroy_flags(kc->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	kc->rk = NULL;
}

/*
 * Asks the brokers for the earliest or latest offset of one partition of a
 * topic, or of all its partitions (partition -1), for reset_offsets.
 * Returns the number of partitions, with palloc'd arrays; raises an error
 * when the cluster does not answer within a few seconds.
 */
int
KafkaQueryOffsets(const char *brokers, const char *topic,
				  const KafkaSetting *settings, int nsettings,
				  int32 partition, bool earliest,
				  int32 **partitions, int64 **offsets)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	int			n = 0;
	int			i;

	conf = KafkaBuildConf(KafkaDefaults, lengthof(KafkaDefaults), brokers, settings, nsettings);
	rk = KafkaNewHandle(RD_KAFKA_CONSUMER, conf, "client");

	rkt = rd_kafka_topic_new(rk, topic, NULL);
	err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
	if (!err && (md->topic_cnt != 1 || md->topics[0].err))
		err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
	if (!err)
	{
		const struct rd_kafka_metadata_topic *mt = &md->topics[0];

		*partitions = palloc(sizeof(int32) * Max(mt->partition_cnt, 1));
		*offsets = palloc(sizeof(int64) * Max(mt->partition_cnt, 1));
		for (i = 0; i < mt->partition_cnt; i++)
		{
			if (partition < 0 || mt->partitions[i].id == partition)
				(*partitions)[n++] = mt->partitions[i].id;
		}
		if (n == 0)
			err = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
	}
	for (i = 0; !err && i < n; i++)
	{
		int64_t		low;
		int64_t		high;

		err = rd_kafka_query_watermark_offsets(rk, topic, (*partitions)[i],
											   &low, &high, 5000);
		(*offsets)[i] = earliest ? low : high;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);

	if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic \"%s\" has no partition %d", topic, partition)));
	if (err)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_KAFKA),
				 errmsg("could not read the offsets of Kafka topic \"%s\"", topic),
				 errdetail("librdkafka: %s", rd_kafka_err2str(err)),
				 errhint("Check that the brokers \"%s\" are reachable and the topic exists.", brokers)));
	return n;
}

/* ---------------------------------------------------------------------------
 * Producer (the dead-letter queue of a source worker, dlq.c)
 *
 * No callbacks at all: delivery reports, errors and log lines are events
 * on the handle's main queue, which only KafkaProducerServe and
 * KafkaProducerClose read, on the backend thread. Produce never blocks:
 * when the bounded local queue is full the message is refused at once.
 * ---------------------------------------------------------------------------
 */

/* Longest wait for the reports of purged messages when a producer closes. */
#define KAFKA_PURGE_MS	200

struct KafkaProducer
{
	rd_kafka_t *rk;
	rd_kafka_queue_t *events;	/* the main queue */
	char	   *topic;
};

/*
 * Producer defaults chosen for camperso, before the caller's settings
 * (which may override them): a local queue bounded in bytes (librdkafka's
 * default is 1 GB) and messages, so an unreachable broker costs bounded
 * memory and a full queue refuses messages instead of blocking; a minute
 * of retries per message; a little linger, as dead letters need no hurry.
 * The message bound stays at librdkafka's default: a burst of small dead
 * letters while the topic is still being created must fit.
 */
static const KafkaSetting KafkaProducerDefaults[] = {
	{"queue.buffering.max.messages", "100000"},
	{"queue.buffering.max.kbytes", "16384"},
	{"message.timeout.ms", "60000"},
	{"linger.ms", "20"},
	{"acks", "all"},
	{"socket.nagle.disable", "true"},
};

/*
 * Creates a producer of topic. settings (the source's kafka.* options) may
 * hold consumer properties: librdkafka logs and ignores them. The result
 * lives in TopMemoryContext; raises on a configuration librdkafka refuses.
 */
KafkaProducer *
KafkaProducerOpen(const char *brokers, const char *topic, const char *client_id,
				  const KafkaSetting *settings, int nsettings)
{
	KafkaProducer *kp;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;

	conf = KafkaBuildConf(KafkaProducerDefaults, lengthof(KafkaProducerDefaults),
						  brokers, settings, nsettings);
	KafkaConfSet(conf, "client.id", client_id);
	rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR |
							 RD_KAFKA_EVENT_LOG);

	rk = KafkaNewHandle(RD_KAFKA_PRODUCER, conf, "producer");
	kp = MemoryContextAllocZero(TopMemoryContext, sizeof(KafkaProducer));
	kp->topic = MemoryContextStrdup(TopMemoryContext, topic);
	kp->rk = rk;
	/* logs go to the main queue too */
	rd_kafka_set_log_queue(kp->rk, NULL);
	kp->events = rd_kafka_queue_get_main(kp->rk);
	return kp;
}

/*
 * Queues one message for the producer's topic (payload, key and headers
 * are copied; key NULL: none). opaque comes back in the delivery report's
 * error text. Never blocks: returns false with the reason in errbuf when
 * librdkafka refuses it at once (local queue full, message too large).
 */
bool
KafkaProducerSend(KafkaProducer *kp, const char *payload, int len,
				  const char *key, int key_len,
				  const KafkaHeader *headers, int nheaders, int64 opaque,
				  char *errbuf, size_t errlen)
{
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nheaders);
	rd_kafka_resp_err_t err;
	int			i;

	for (i = 0; i < nheaders; i++)
		rd_kafka_header_add(hdrs, headers[i].name, -1,
							headers[i].value, headers[i].value_len);
	err = rd_kafka_producev(kp->rk,
							RD_KAFKA_V_TOPIC(kp->topic),
							RD_KAFKA_V_VALUE((void *) payload, (size_t) len),
							RD_KAFKA_V_KEY((void *) key, key ? (size_t) key_len : 0),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							RD_KAFKA_V_HEADERS(hdrs),
							RD_KAFKA_V_OPAQUE((void *) (intptr_t) opaque),
							RD_KAFKA_V_END);
	if (err)
	{
		/* not taken: the headers are still ours */
		rd_kafka_headers_destroy(hdrs);
		snprintf(errbuf, errlen, "%s: %s", rd_kafka_err2name(err), rd_kafka_err2str(err));
		return false;
	}
	return true;
}

/* Accounts for one event of the producer's queue; destroys it. */
static void
KafkaProducerEvent(KafkaProducer *kp, rd_kafka_event_t *ev, KafkaDeliveries *out)
{
	const rd_kafka_message_t *rkm;
	const char *fac;
	const char *text;
	int			level;
	char		line[512];

	switch (rd_kafka_event_type(ev))
	{
		case RD_KAFKA_EVENT_DR:
			while ((rkm = rd_kafka_event_message_next(ev)) != NULL)
			{
				if (!rkm->err)
				{
					out->delivered++;
					continue;
				}
				out->failed++;
				out->failed_opaque = (int64) (intptr_t) rkm->_private;
				/* not rd_kafka_message_errstr: for a producer that is the payload */
				snprintf(out->delivery_error, sizeof(out->delivery_error), "%s: %s",
						 rd_kafka_err2name(rkm->err), rd_kafka_err2str(rkm->err));
			}
			break;
		case RD_KAFKA_EVENT_ERROR:
			out->client_errors++;
			snprintf(out->client_error, sizeof(out->client_error), "%s: %s",
					 rd_kafka_err2name(rd_kafka_event_error(ev)),
					 rd_kafka_event_error_string(ev));
			break;
		case RD_KAFKA_EVENT_LOG:
			rd_kafka_event_log(ev, &fac, &text, &level);
			snprintf(line, sizeof(line), "%s", text);
			rd_kafka_event_destroy(ev);
			KafkaLog(kp->rk, level, fac ? fac : "", line);
			return;
		default:
			break;
	}
	rd_kafka_event_destroy(ev);
}

/*
 * Serves the producer's events: waits at most timeout_ms for the first,
 * then takes what is ready (at most a bounded number, so a flood cannot
 * hold the caller). Adds what happened to *out (which the caller zeroes):
 * deliveries, failures with the last one's reason and opaque, client-level
 * errors with the last one's text, and the messages still pending.
 */
void
KafkaProducerServe(KafkaProducer *kp, int timeout_ms, KafkaDeliveries *out)
{
	rd_kafka_event_t *ev;
	int			n = 0;

	if (kp == NULL || kp->rk == NULL)
		return;
	while (n++ < 1000 && (ev = rd_kafka_queue_poll(kp->events, n == 1 ? timeout_ms : 0)) != NULL)
		KafkaProducerEvent(kp, ev, out);
	out->pending = rd_kafka_outq_len(kp->rk);
}

/*
 * Waits at most timeout_ms for the messages in flight to be delivered,
 * then gives up on the rest (counted failed) and destroys the handle.
 * Safe to call from a shmem-exit callback.
 */
void
KafkaProducerClose(KafkaProducer *kp, int timeout_ms, KafkaDeliveries *out)
{
	TimestampTz deadline;
	rd_kafka_event_t *ev;

	if (kp == NULL || kp->rk == NULL)
		return;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	while (rd_kafka_outq_len(kp->rk) > 0 && GetCurrentTimestamp() < deadline)
		KafkaProducerServe(kp, 50, out);
	/* what is left fails with __PURGE_QUEUE/__PURGE_INFLIGHT, reported soon */
	rd_kafka_purge(kp->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KAFKA_PURGE_MS);
	while (rd_kafka_outq_len(kp->rk) > 0 && GetCurrentTimestamp() < deadline)
	{
		ev = rd_kafka_queue_poll(kp->events, 10);
		if (ev != NULL)
			KafkaProducerEvent(kp, ev, out);
	}
	out->pending = rd_kafka_outq_len(kp->rk);
	rd_kafka_queue_destroy(kp->events);
	kp->events = NULL;
	rd_kafka_destroy(kp->rk);
	kp->rk = NULL;
}
