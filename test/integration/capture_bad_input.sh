#!/usr/bin/env bash
# Every kind of bad input, produced through Kafka, lands in the quarantine
# byte-exact with its rule, partition and offset, while the good messages
# around it land: malformed JSON, invalid UTF-8, not an object, NUL bytes
# (escaped and raw), nesting too deep, oversized, wrong type, out of range,
# NOT NULL, CHECK, UNIQUE and length violations, and a hostile key.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

kafka_start k --brokers 1 --topic bad:1
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
q a "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, n int NOT NULL UNIQUE, k varchar(10),
     seq int CHECK (seq >= 0), _partition int, _offset bigint, _key text, _raw bytea)"

W=$CAMPERSO_TEST_WORK/msgs
mkdir -p "$W"
# one file per message, named <number>.<expected rule or "good">
deep=$(printf '%0.s[' $(seq 1 700))$(printf '%0.s]' $(seq 1 700))
big=$(head -c 150000 /dev/zero | tr '\0' 'x')
printf '{"n":1,"k":"good","seq":1}' >"$W/01.good"
printf '{"n":2,"k":' >"$W/02.malformed_json"
printf '{"n":3,"k":"\xff\xfe"}' >"$W/03.invalid_utf8"
printf '[3,4]' >"$W/04.not_an_object"
printf '{"n":5,"k":"a\\u0000b"}' >"$W/05.nul_byte"
printf '{"n":6,"k":"a\x00b"}' >"$W/06.nul_byte"
printf '{"n":7,"k":%s}' "$deep" >"$W/07.too_deep"
printf '{"n":8,"k":"%s"}' "$big" >"$W/08.oversized"
printf '{"n":"nine"}' >"$W/09.wrong_type"
printf '{"n":99999999999}' >"$W/10.out_of_range"
printf '{"k":"no n"}' >"$W/11.not_null"
printf '{"n":12,"seq":-1}' >"$W/12.check_violation"
printf '{"n":1,"k":"dup"}' >"$W/13.unique_violation"
printf '{"n":14,"k":"far too long for ten"}' >"$W/14.too_long"
printf '{"n":15,"k":"\xed\xa0\x80"}' >"$W/15.invalid_utf8"
printf '{"n":16,"k":"good","seq":2}' >"$W/16.good"
printf '{"n":17,"n":"dup key, last wins"}' >"$W/17.wrong_type"
printf '{"n":18,"k":"good","seq":3}' >"$W/18.good"
files=("$W"/*)
N=${#files[@]}

q a "SELECT camperso.create_source('b', '$BS', 'bad', 't', options => '{\"max_message_bytes\": 100000, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('b')" >/dev/null
# a hostile key on message 18: quotes, a backslash and a SQL fragment
for f in "${files[@]}"; do
	if [[ $f == *18.good ]]; then printf "x'); DROP TABLE t; --\\\\\"\t"; fi
	cat "$f"
	printf '\x1e'
done | kcat -b "$BS" -P -t bad -p 0 -D $'\x1e' -K $'\t' || fail "kcat -P failed"
assert_eq "$N" "$(kafka_count k bad)" "all $N messages are in the topic"

landed_all() { [ "$(q a "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM camperso.quarantine)")" -ge "$N" ]; }
wait_for 30 "every message to be landed or quarantined" landed_all
sleep 0.5
assert_eq "3|$((N - 3))" "$(q a "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM camperso.quarantine)")" \
	"3 good messages landed, $((N - 3)) quarantined, nothing lost"
assert_eq "1 16 18" "$(q a "SELECT string_agg(n::text, ' ' ORDER BY n) FROM t")" "the good ones are the ones that landed"

for f in "${files[@]}"; do
	name=$(basename "$f")
	idx=$((10#${name%%.*} - 1))
	rule=${name#*.}
	[ "$rule" = good ] && continue
	got=$(q a "SELECT rule || '|' || md5(payload) || '|' || partition || '|' || source || '|' || topic
	           FROM camperso.quarantine WHERE \"offset\" = $idx")
	assert_eq "$rule|$(md5sum <"$f" | cut -d' ' -f1)|0|b|bad" "$got" "message $name: rule $rule, payload byte-exact, partition, source, topic"
done
q a "SELECT rule, field, left(reason, 80) FROM camperso.quarantine ORDER BY \"offset\""

assert_eq "x'); DROP TABLE t; --\\\"" "$(q a "SELECT _key FROM t WHERE n = 18")" "a hostile key lands as plain text"
stats_ok() { [ "$(q a "SELECT messages || '|' || quarantined || '|' || lag FROM camperso.stat_sources WHERE source = 'b' AND partition = 0")" = "$N|$((N - 3))|0" ]; }
wait_for 10 "stat_sources to count the messages and the quarantined" stats_ok
echo "ok - stat_sources counts $N messages, $((N - 3)) quarantined, lag 0"
assert_eq 0 "$(q a "SELECT errors FROM camperso.stat_sources WHERE source = 'b' AND partition IS NULL")" \
	"bad messages are not worker errors"
