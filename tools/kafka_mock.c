/*-------------------------------------------------------------------------
 *
 * kafka_mock.c
 *	  camperso-kafka: the embedded Kafka used by the demo, the tests and the
 *	  benchmarks. It starts librdkafka's mock cluster, which speaks the real
 *	  Kafka protocol over TCP on 127.0.0.1, so kcat and camperso's workers
 *	  talk to it exactly as they would to a real broker.
 *
 *	  camperso-kafka [--brokers N] [--topic NAME:PARTITIONS]...
 *	                 [--bootstrap-file PATH] [--no-stdin]
 *
 * It prints "BOOTSTRAP host:port,..." on stdout (and writes the servers to
 * --bootstrap-file), then runs until SIGTERM/SIGINT or until stdin closes.
 * Lines on stdin are control commands, so a test can inject faults:
 *
 *	  topic NAME PARTITIONS        create a topic
 *	  down BROKER_ID / up BROKER_ID
 *	  rtt BROKER_ID MILLISECONDS   delay every response of a broker
 *	  errors APIKEY ERRCODE COUNT  fail the next COUNT requests of APIKEY
 *	  clear APIKEY                 forget the errors still queued for APIKEY
 *	  quit
 *
 * Each command is answered by one line, "OK" or "ERR <reason>".
 *
 * Limit: the mock keeps about 5 MiB per partition and silently drops older
 * messages beyond that. Pre-load backlogs compressed (kcat -z lz4) into
 * enough partitions, and count them before relying on them.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 64

static volatile sig_atomic_t stop_requested = 0;

static void
handle_stop(int signo)
{
	(void) signo;
	stop_requested = 1;
}

static void
usage(const char *progname)
{
	fprintf(stderr,
			"usage: %s [--brokers N] [--topic NAME:PARTITIONS]... "
			"[--bootstrap-file PATH] [--no-stdin]\n", progname);
	exit(2);
}

/* Creates one topic; returns 0 or prints the reason to "reply" and -1. */
static int
create_topic(rd_kafka_mock_cluster_t *mcluster, const char *name,
			 int partitions, char *reply, size_t replylen)
{
	rd_kafka_resp_err_t err;

	if (partitions < 1 || partitions > 10000)
	{
		snprintf(reply, replylen, "ERR partitions must be between 1 and 10000");
		return -1;
	}
	err = rd_kafka_mock_topic_create(mcluster, name, partitions, 1);
	if (err)
	{
		snprintf(reply, replylen, "ERR %s", rd_kafka_err2str(err));
		return -1;
	}
	snprintf(reply, replylen, "OK");
	return 0;
}

/* Executes one control line; fills "reply"; returns 1 when asked to quit. */
static int
run_command(rd_kafka_mock_cluster_t *mcluster, char *line,
			char *reply, size_t replylen)
{
	char		verb[32];
	char		name[256];
	long		a = 0,
				b = 0,
				c = 0;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

	line[strcspn(line, "\r\n")] = '\0';
	if (sscanf(line, "%31s", verb) != 1)
	{
		snprintf(reply, replylen, "ERR empty command");
		return 0;
	}

	if (strcmp(verb, "quit") == 0)
	{
		snprintf(reply, replylen, "OK");
		return 1;
	}
	else if (strcmp(verb, "topic") == 0 &&
			 sscanf(line, "%*s %255s %ld", name, &a) == 2)
	{
		create_topic(mcluster, name, (int) a, reply, replylen);
		return 0;
	}
	else if (strcmp(verb, "down") == 0 && sscanf(line, "%*s %ld", &a) == 1)
		err = rd_kafka_mock_broker_set_down(mcluster, (int32_t) a);
	else if (strcmp(verb, "up") == 0 && sscanf(line, "%*s %ld", &a) == 1)
		err = rd_kafka_mock_broker_set_up(mcluster, (int32_t) a);
	else if (strcmp(verb, "clear") == 0 && sscanf(line, "%*s %ld", &a) == 1)
		rd_kafka_mock_clear_request_errors(mcluster, (int16_t) a);
	else if (strcmp(verb, "rtt") == 0 &&
			 sscanf(line, "%*s %ld %ld", &a, &b) == 2)
		err = rd_kafka_mock_broker_set_rtt(mcluster, (int32_t) a, (int) b);
	else if (strcmp(verb, "errors") == 0 &&
			 sscanf(line, "%*s %ld %ld %ld", &a, &b, &c) == 3)
	{
		rd_kafka_resp_err_t *errs;
		long		i;

		if (c < 1 || c > 100000)
		{
			snprintf(reply, replylen, "ERR count must be between 1 and 100000");
			return 0;
		}
		errs = calloc((size_t) c, sizeof(*errs));
		if (errs == NULL)
		{
			snprintf(reply, replylen, "ERR out of memory");
			return 0;
		}
		for (i = 0; i < c; i++)
			errs[i] = (rd_kafka_resp_err_t) b;
		rd_kafka_mock_push_request_errors_array(mcluster, (int16_t) a,
												(size_t) c, errs);
		free(errs);
	}
	else
	{
		snprintf(reply, replylen, "ERR unknown or malformed command: %.200s", line);
		return 0;
	}

	if (err)
		snprintf(reply, replylen, "ERR %s", rd_kafka_err2str(err));
	else
		snprintf(reply, replylen, "OK");
	return 0;
}

int
main(int argc, char **argv)
{
	int			brokers = 1;
	const char *bootstrap_file = NULL;
	int			watch_stdin = 1;
	char	   *topics[MAX_TOPICS];
	int			ntopics = 0;
	char		errstr[512];
	char		reply[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mcluster;
	const char *bootstraps;
	sigset_t	blocked,
				saved;
	int			i;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
			brokers = atoi(argv[++i]);
		else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
		{
			if (ntopics == MAX_TOPICS)
			{
				fprintf(stderr, "camperso-kafka: at most %d --topic options\n", MAX_TOPICS);
				return 2;
			}
			topics[ntopics++] = argv[++i];
		}
		else if (strcmp(argv[i], "--bootstrap-file") == 0 && i + 1 < argc)
			bootstrap_file = argv[++i];
		else if (strcmp(argv[i], "--no-stdin") == 0)
			watch_stdin = 0;
		else
			usage(argv[0]);
	}
	if (brokers < 1 || brokers > 16)
	{
		fprintf(stderr, "camperso-kafka: --brokers must be between 1 and 16\n");
		return 2;
	}

	/*
	 * librdkafka's threads inherit our signal mask: create them with
	 * SIGTERM/SIGINT blocked so the signals reach the main thread.
	 */
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &blocked, &saved);

	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "camperso-kafka: %s\n", errstr);
		return 1;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		fprintf(stderr, "camperso-kafka: %s\n", errstr);
		return 1;
	}
	mcluster = rd_kafka_mock_cluster_new(rk, brokers);
	if (mcluster == NULL)
	{
		fprintf(stderr, "camperso-kafka: could not start the mock cluster\n");
		return 1;
	}

	for (i = 0; i < ntopics; i++)
	{
		char	   *colon = strrchr(topics[i], ':');
		int			partitions = 1;

		if (colon)
		{
			*colon = '\0';
			partitions = atoi(colon + 1);
		}
		if (create_topic(mcluster, topics[i], partitions, reply, sizeof(reply)) != 0)
		{
			fprintf(stderr, "camperso-kafka: topic %s: %s\n", topics[i], reply);
			return 1;
		}
	}

	signal(SIGTERM, handle_stop);
	signal(SIGINT, handle_stop);
	signal(SIGPIPE, SIG_IGN);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);

	bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
	if (bootstrap_file)
	{
		char		tmp[4096];
		FILE	   *f;

		/* Written then renamed, so a reader never sees half a line. */
		snprintf(tmp, sizeof(tmp), "%s.tmp", bootstrap_file);
		f = fopen(tmp, "w");
		if (f == NULL || fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) != 0 ||
			rename(tmp, bootstrap_file) != 0)
		{
			fprintf(stderr, "camperso-kafka: cannot write %s: %s\n",
					bootstrap_file, strerror(errno));
			return 1;
		}
	}
	printf("BOOTSTRAP %s\n", bootstraps);
	fflush(stdout);

	while (!stop_requested)
	{
		struct pollfd pfd;
		int			rc;

		if (!watch_stdin)
		{
			usleep(200 * 1000);
			continue;
		}
		pfd.fd = STDIN_FILENO;
		pfd.events = POLLIN;
		pfd.revents = 0;
		rc = poll(&pfd, 1, 200);
		if (rc < 0)
		{
			if (errno == EINTR)
				continue;
			break;
		}
		if (rc > 0)
		{
			char		line[1024];

			if (fgets(line, sizeof(line), stdin) == NULL)
				break;			/* stdin closed: the owner is gone */
			if (run_command(mcluster, line, reply, sizeof(reply)))
				stop_requested = 1;
			printf("%s\n", reply);
			fflush(stdout);
		}
	}

	rd_kafka_mock_cluster_destroy(mcluster);
	rd_kafka_destroy(rk);
	return 0;
}
