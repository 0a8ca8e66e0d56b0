#!/usr/bin/env bash
# The embedded Kafka speaks the real protocol: kcat lists its brokers and
# topics, produces keyed lz4-compressed messages and reads every one back;
# control commands create topics and take a broker down and up.
source "$(dirname "$0")/../lib.sh"

kafka_start k --brokers 3 --topic clicks:4
BS=$(kafka_bootstrap k)
note "bootstrap servers: $BS"

meta=$(kcat -b "$BS" -L)
assert_eq 3 "$(grep -cE '^  broker [0-9]+ at 127\.0\.0\.1:' <<<"$meta")" "kcat -L sees three brokers on 127.0.0.1"
assert_eq 1 "$(grep -c 'topic "clicks" with 4 partitions' <<<"$meta")" "kcat -L sees topic clicks with 4 partitions"

N=5000
seq 1 $N | awk '{ printf "user-%d\t{\"n\":%d,\"pad\":\"%s\"}\n", $1 % 97, $1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }' |
	kafka_produce k clicks -z lz4 -K '\t' || fail "kcat -P failed"

got=$(kcat -b "$BS" -C -t clicks -e -q -f '%k %s\n' | sort | md5sum)
want=$(seq 1 $N | awk '{ printf "user-%d {\"n\":%d,\"pad\":\"%s\"}\n", $1 % 97, $1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }' | sort | md5sum)
assert_eq "$want" "$got" "all $N keyed messages read back byte-exact"

# Keys are partitioned consistently: one key never spans partitions.
spread=$(kcat -b "$BS" -C -t clicks -e -q -f '%k %p\n' | sort -u | awk '{print $1}' | uniq -d | wc -l)
assert_eq 0 "$spread" "each key lives in exactly one partition"

kafka_ctl k topic late_topic 2
assert_eq 1 "$(kcat -b "$BS" -L -t late_topic | grep -c 'with 2 partitions')" "control command creates a topic"

kafka_ctl k down 1
kafka_ctl k up 1
echo 'after-restart' | kafka_produce k late_topic || fail "produce after broker down/up failed"
assert_eq 1 "$(kafka_count k late_topic)" "broker down/up keeps serving"

if kafka_ctl_out=$( (kafka_ctl k bogus 1) 2>&1); then
	fail "unknown control command was accepted"
fi
grep -q "unknown or malformed command" <<<"$kafka_ctl_out" || fail "unknown command answered: $kafka_ctl_out"
echo "ok - unknown control commands are refused"

# SIGTERM stops it promptly.
pid=$(cat "$CAMPERSO_TEST_WORK/kafka-k/pid")
kill -TERM "$pid"
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "camperso-kafka ignored SIGTERM"
echo "ok - SIGTERM stops the embedded kafka"
