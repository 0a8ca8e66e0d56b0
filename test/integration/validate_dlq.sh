#!/usr/bin/env bash
# The dead-letter topic of a source (option dlq_topic). Case 1: a source
# with a ruleset gets good, undecodable and rule-breaking messages on two
# partitions; every message lands or is quarantined, and the DLQ topic
# holds exactly the quarantined ones, byte-exact with their keys, with
# headers (read back with kcat) that match their camperso.quarantine rows;
# camperso.ingest() callers are not copied. Case 2: the DLQ topic refuses
# every produce (errors injected into the embedded Kafka): the main flow
# still lands everything, the failures are counted and shown, the worker
# stays up, and once the outage ends new dead letters go through again.
# Case 3: a local queue of one message refuses the rest of a burst at once
# (counted failed), never blocking the worker. Case 4: a source with pii
# fields copies what its quarantine row holds, never PII in clear: the
# payload as an envelope (header payload_encrypted) and the key's pseudonym.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

kafka_start k --brokers 1 --topic in:2 --topic dlq:1 --topic in2:1 --topic dlq2:1 --topic in3:1 --topic dlq3:1 --topic in4:1 --topic dlq4:1
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso" >/dev/null
q a "CREATE TABLE t (n int NOT NULL, k text, _partition int, _offset bigint)"
q a "SELECT camperso.add_rule('r', 'n', 'required'), camperso.add_rule('r', 'n', 'range', '{\"min\": 0, \"max\": 1000}'),
            camperso.add_rule('r', 'k', 'regex', '\"^[a-z]+\$\"')" >/dev/null

W=$CAMPERSO_TEST_WORK/msgs
rm -rf "$W"
mkdir -p "$W"
# one file per message: <partition>.<offset>.<good|bad>; keys in <file>.key
msg() { printf "$2" >"$W/$1"; [ -n "${3:-}" ] && printf '%s' "$3" >"$W/$1.key"; return 0; }
msg 0.0.good '{"n":1,"k":"abc"}' k1
msg 0.1.bad '{"n":2,"k":' k2
msg 0.2.bad '{"n":5000,"k":"abc"}' k3
msg 0.3.good '{"n":3,"k":"def"}' k4
msg 0.4.bad '{"n":4,"k":"\xff\xfe"}' k5
msg 0.5.bad '{"n":6,"k":"ABC"}' k6
msg 1.0.bad '{"k":"abc"}' k7
msg 1.1.good '{"n":7,"k":"ghi"}' k8
msg 1.2.bad '[1,2]' k9
msg 1.3.good '{"n":8,"k":"jkl"}'
msg 1.4.bad '{"n":-1,"k":"abc"}'
msg 1.5.bad '{"n":"nine","k":"abc"}' 'k, "10"'

# produce: key<TAB>payload, \x1e-delimited, each partition in order
produce() {
	local topic=$1 part=$2 f
	for f in "$W/$part".*; do
		[[ $f == *.key ]] && continue
		[ -f "$f.key" ] && { cat "$f.key"; printf '\t'; }
		cat "$f"
		printf '\x1e'
	done | kcat -b "$BS" -P -t "$topic" -p "$part" -D $'\x1e' -K $'\t' || fail "kcat -P failed"
}
produce in 0
produce in 1
N=$(ls "$W" | grep -vc '\.key$')
NBAD=$(ls "$W" | grep -c '\.bad$')
assert_eq "$N" "$(kafka_count k in)" "all $N messages are in the source topic"

q a "SELECT camperso.create_source('s1', '$BS', 'in', 't', ruleset => 'r',
     options => '{\"dlq_topic\": \"dlq\", \"batch_ms\": 50, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('s1')" >/dev/null
done1() { [ "$(q a "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM camperso.quarantine WHERE source = 's1')")" -ge "$N" ]; }
wait_for 30 "every message of s1 to be landed or quarantined" done1
assert_eq "$((N - NBAD))|$NBAD" "$(q a "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM camperso.quarantine WHERE source = 's1')")" \
	"landed + quarantined = produced: $((N - NBAD)) landed, $NBAD quarantined"
for f in "$W"/*.bad; do
	b=$(basename "$f")
	p=${b%%.*}
	o=${b#*.}
	o=${o%%.*}
	assert_eq "$(md5sum <"$f" | cut -d' ' -f1)" "$(q a "SELECT md5(payload) FROM camperso.quarantine WHERE source = 's1' AND partition = $p AND \"offset\" = $o")" \
		"message $p/$o is quarantined byte-exact"
done

dlq_done() { [ "$(q a "SELECT dlq_produced FROM camperso.stat_sources WHERE source = 's1' AND partition IS NULL")" = "$NBAD" ]; }
wait_for 20 "stat_sources to count $NBAD dead letters delivered" dlq_done
echo "ok - stat_sources counts $NBAD dead letters delivered"
assert_eq "0||" "$(q a "SELECT dlq_failed || '|' || coalesce(dlq_last_error, '') || '|' || coalesce(dlq_last_error_at::text, '')
                        FROM camperso.stat_sources WHERE source = 's1' AND partition IS NULL")" "no dead letter failed"
assert_eq "$NBAD" "$(kafka_count k dlq)" "the DLQ topic holds exactly the $NBAD quarantined messages"

# each dead letter: payload byte-exact, original key, headers = its quarantine row
seen=""
for i in $(seq 0 $((NBAD - 1))); do
	read1() { kcat -b "$BS" -C -t dlq -p 0 -o "$i" -c 1 -e -q -Z -f "$1"; }
	h=$(read1 '%h')
	read1 '%s' >"$W/dlq.$i"
	key=$(read1 '%k')
	p=$(sed -n 's/.*__camperso\.errors\.partition=\([0-9]*\).*/\1/p' <<<"$h")
	o=$(sed -n 's/.*__camperso\.errors\.offset=\([0-9]*\).*/\1/p' <<<"$h")
	[ -n "$p" ] && [ -n "$o" ] || fail "dead letter $i has no partition/offset headers: $h"
	f=$(ls "$W/$p.$o".* | grep -v '\.key$')
	[[ $f == *.bad ]] || fail "dead letter $i is message $p/$o, which was good"
	assert_eq "$(md5sum <"$f" | cut -d' ' -f1)" "$(md5sum <"$W/dlq.$i" | cut -d' ' -f1)" "dead letter $p/$o: payload byte-exact"
	assert_eq "$(if [ -f "$f.key" ]; then cat "$f.key"; else echo NULL; fi)" "$key" "dead letter $p/$o: original key"
	want=$(q a "SELECT '__camperso.errors.source=' || source || ',__camperso.errors.topic=' || topic
	                || ',__camperso.errors.partition=' || partition || ',__camperso.errors.offset=' || \"offset\"
	                || ',__camperso.errors.rule=' || rule || coalesce(',__camperso.errors.field=' || field, '')
	                || ',__camperso.errors.reason=' || reason || ',__camperso.errors.quarantine_id=' || id
	              FROM camperso.quarantine WHERE source = 's1' AND partition = $p AND \"offset\" = $o")
	assert_eq "$want" "$h" "dead letter $p/$o: headers carry source, topic, partition, offset, rule, field, reason and quarantine id"
	seen="$seen $p/$o"
done
assert_eq "$NBAD" "$(tr ' ' '\n' <<<"$seen" | sort -u | grep -c .)" "each quarantined message is in the DLQ once"
q a "SELECT partition, \"offset\", rule, field, left(reason, 60) FROM camperso.quarantine WHERE source = 's1' ORDER BY 1, 2"

# camperso.ingest() (no Kafka in the loop) quarantines, but copies nothing
q a "SELECT quarantined FROM camperso.ingest('s1', '{\"n\": 1, \"k\": \"NOPE\"}')" >/dev/null
assert_eq "$((NBAD + 1))" "$(q a "SELECT count(*) FROM camperso.quarantine WHERE source = 's1'")" "ingest() quarantines as usual"
sleep 1
assert_eq "$NBAD|$NBAD" "$(q a "SELECT dlq_produced FROM camperso.stat_sources WHERE source = 's1' AND partition IS NULL")|$(kafka_count k dlq)" \
	"ingest() sends nothing to the DLQ topic"

# ---- Case 2: the brokers take no produce at all
rm -f "$W"/*
msg 0.0.good '{"n":11,"k":"abc"}' k1
msg 0.1.bad '{"n":12,"k":"ABC"}' k2
msg 0.2.bad 'not json at all' k3
msg 0.3.good '{"n":13,"k":"abc"}' k4
msg 0.4.bad '{"n":1001,"k":"abc"}' k5
produce in2 0
q a "TRUNCATE t"
# copies are retried for 2 s (kafka.message.timeout.ms), then count as failed
q a "SELECT camperso.create_source('s2', '$BS', 'in2', 't', ruleset => 'r',
     options => '{\"dlq_topic\": \"dlq2\", \"batch_ms\": 50, \"kafka.message.timeout.ms\": 2000, $KAFKA_TEST_OPTS}')" >/dev/null
# Produce = API key 0; 19 = NOT_ENOUGH_REPLICAS: the brokers take no writes
kafka_ctl k errors 0 19 2000
q a "SELECT camperso.start_source('s2')" >/dev/null
done2() { [ "$(q a "SELECT count(*) FROM t")" = 2 ] && [ "$(q a "SELECT count(*) FROM camperso.quarantine WHERE source = 's2'")" = 3 ]; }
wait_for 30 "s2 to land 2 messages and quarantine 3 while the DLQ is refused" done2
echo "ok - the main flow lands and quarantines everything during the DLQ outage"
failed2() { [ "$(q a "SELECT dlq_failed FROM camperso.stat_sources WHERE source = 's2' AND partition IS NULL")" = 3 ]; }
wait_for 20 "the 3 failed dead letters to be counted" failed2
echo "ok - stat_sources counts the 3 failed dead letters"
q a "SELECT dlq_produced, dlq_failed, dlq_last_error FROM camperso.stat_sources WHERE source = 's2' AND partition IS NULL"
q a "SELECT dlq_last_error FROM camperso.stat_sources WHERE source = 's2' AND partition IS NULL" | grep -q 'dlq2.*MSG_TIMED_OUT' ||
	fail "dlq_last_error does not show the refusal"
echo "ok - dlq_last_error shows the refusal"
grep -q 'could not be copied to dead-letter topic "dlq2"' "$(cluster_log a)" || fail "the failure is not in the server log"
echo "ok - the server log says the copies failed"
pid2=$(worker_pids a s2)
assert_eq "running|0|0" "$(q a "SELECT state || '|' || errors || '|' || dlq_produced FROM camperso.stat_sources WHERE source = 's2' AND partition IS NULL")" \
	"the worker keeps running; DLQ failures are not worker errors"
assert_eq 0 "$(kafka_count k dlq2)" "nothing reached the refused DLQ topic"
assert_eq 3 "$(q a "SELECT camperso.metrics()" | grep '^camperso_source_worker_dlq_failed_total{source="s2"}' | awk '{ print $NF }')" \
	"camperso_source_worker_dlq_failed_total counts them too"

# the outage ends: later dead letters go through, earlier ones stay in the quarantine only
kafka_ctl k clear 0
rm -f "$W"/*
msg 0.5.bad '{"n":2000,"k":"abc"}' k6
msg 0.6.good '{"n":14,"k":"abc"}' k7
produce in2 0
done3() { [ "$(q a "SELECT dlq_produced FROM camperso.stat_sources WHERE source = 's2' AND partition IS NULL")" = 1 ]; }
wait_for 30 "the dead letter after the outage to be delivered" done3
assert_eq "3|4|1|5" "$(q a "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM camperso.quarantine WHERE source = 's2'),
                               (SELECT dlq_produced FROM camperso.stat_sources WHERE source = 's2' AND partition IS NULL),
                               (SELECT \"offset\" FROM camperso.quarantine WHERE source = 's2' ORDER BY id DESC LIMIT 1)")" \
	"after the outage: 3 landed, 4 quarantined, the new one copied"
assert_eq "1|5" "$(kafka_count k dlq2)|$(kcat -b "$BS" -C -t dlq2 -e -q -f '%h\n' | sed -n 's/.*__camperso\.errors\.offset=\([0-9]*\).*/\1/p')" \
	"the DLQ topic holds the dead letter of offset 5"
assert_eq "$pid2" "$(worker_pids a s2)" "the same worker ran through the outage"

# ---- Case 3: a burst larger than the local queue (kafka.queue.buffering.max.messages = 1)
rm -f "$W"/*
for i in 0 1 2 3 4 5 6 7; do msg "0.$i.bad" "{\"n\":-$((i + 1)),\"k\":\"abc\"}" "k$i"; done
msg 0.8.good '{"n":15,"k":"abc"}' k8
# all in the topic before the source starts, so they come as one batch
produce in3 0
q a "SELECT camperso.create_source('s3', '$BS', 'in3', 't', ruleset => 'r',
     options => '{\"dlq_topic\": \"dlq3\", \"batch_ms\": 500, \"kafka.queue.buffering.max.messages\": 1, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('s3')" >/dev/null
done4() { [ "$(q a "SELECT count(*) FROM camperso.quarantine WHERE source = 's3'")" = 8 ] &&
          [ "$(q a "SELECT dlq_produced + dlq_failed FROM camperso.stat_sources WHERE source = 's3' AND partition IS NULL")" = 8 ]; }
wait_for 30 "s3 to quarantine 8 messages and account for their 8 dead letters" done4
r=$(q a "SELECT dlq_produced || '|' || dlq_failed || '|' || dlq_last_error FROM camperso.stat_sources WHERE source = 's3' AND partition IS NULL")
note "s3: $r"
[[ $r == *QUEUE_FULL* ]] || fail "a full local queue is not reported: $r"
failed=$(cut -d'|' -f2 <<<"$r")
[ "$failed" -ge 1 ] || fail "no dead letter was refused by the full queue: $r"
echo "ok - a full local queue refuses dead letters at once and counts them ($failed failed)"
assert_eq "$(cut -d'|' -f1 <<<"$r")" "$(kafka_count k dlq3)" "what was counted delivered is in the DLQ topic"
assert_eq 1 "$(q a "SELECT count(*) FROM t WHERE n = 15")" "the good message of the burst landed"

# ---- Case 4: a source with pii fields
rm -f "$W"/*
msg 0.0.bad '{"n":5000,"k":"alice"}' alice-key
msg 0.1.good '{"n":16,"k":"bob"}' bob-key
produce in4 0
q a "SELECT camperso.create_source('s4', '$BS', 'in4', 't', ruleset => 'r',
     options => '{\"dlq_topic\": \"dlq4\", \"batch_ms\": 50, \"pii\": {\"k\": \"pseudonymize\", \"_key\": \"pseudonymize\"}, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('s4')" >/dev/null
done5() { [ "$(q a "SELECT dlq_produced FROM camperso.stat_sources WHERE source = 's4' AND partition IS NULL")" = 1 ]; }
wait_for 30 "s4 to copy its dead letter" done5
assert_eq "1|1" "$(q a "SELECT (SELECT count(*) FROM t WHERE n = 16 AND k <> 'bob'), (SELECT count(*) FROM camperso.quarantine WHERE source = 's4')")" \
	"s4 lands its good message pseudonymised and quarantines the bad one"
r1() { kcat -b "$BS" -C -t dlq4 -p 0 -o 0 -c 1 -e -q -Z -f "$1"; }
r1 '%s' >"$W/dlq4.0"
! grep -q alice "$W/dlq4.0" || fail "the dead letter of a pii source carries the message in clear"
echo "ok - the dead letter's payload is not the message in clear"
assert_eq "$(q a "SELECT md5(payload) FROM camperso.quarantine WHERE source = 's4'")" "$(md5sum <"$W/dlq4.0" | cut -d' ' -f1)" \
	"the dead letter's payload is the quarantine row's envelope, byte-exact"
assert_eq '{"n":5000,"k":"alice"}|true' "$(q a "SELECT convert_from(camperso.decrypt(payload), 'UTF8') || '|' || payload_encrypted FROM camperso.quarantine WHERE source = 's4'")" \
	"camperso.decrypt() gives the message back"
key=$(r1 '%k')
[ "$key" != alice-key ] || fail "the dead letter of a pii source carries its key in clear"
assert_eq "$(q a "SELECT convert_from(key, 'UTF8') FROM camperso.quarantine WHERE source = 's4'")" "$key" \
	"the dead letter's key is the quarantine row's pseudonym"
r1 '%h' | grep -q '__camperso\.errors\.payload_encrypted=true' || fail "no payload_encrypted header: $(r1 '%h')"
echo "ok - the dead letter says its payload is an envelope"

# a clean stop flushes within its bound and leaves the worker's traces
q a "SELECT camperso.stop_source('s1'), camperso.stop_source('s2'), camperso.stop_source('s3'), camperso.stop_source('s4')" >/dev/null
stopped() { [ -z "$(worker_pids a s1)$(worker_pids a s2)$(worker_pids a s3)$(worker_pids a s4)" ]; }
wait_for 20 "the workers to stop" stopped
echo "ok - the workers stop cleanly"
