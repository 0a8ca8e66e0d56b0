#!/usr/bin/env bash
# Poison and hostile messages mixed into good traffic. A corpus of
# malformed, oversized (up to 2 MB, above the fetch size), deeply nested,
# wrongly encoded, wrongly typed and empty or null messages is produced
# again and again into the same partitions as a stream of good messages.
# Every bad message is quarantined with its rule and a reason, every good
# one lands, the worker stays the same process without errors, and good
# messages keep landing while the poison goes on (the good ones produced
# after each round of poison land before the next round).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"
source "$(dirname "$0")/../resilience_lib.sh"

ROUNDS=$(quick 4 10)
GOOD_PER_ROUND=$(quick 1000 3000)

# one partition per round of poison: the mock keeps only ~5 MiB per partition
kafka_start k --brokers 1 --topic mixed:$ROUNDS
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
q a "CREATE DOMAIN positive AS int CHECK (VALUE > 0)"
q a "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, n int NOT NULL, k varchar(20), seq int,
     ts timestamptz, amount numeric(8,2), flag bool, uid uuid, props jsonb, ip inet, day date, code positive,
     _partition int, _offset bigint, _key text, _raw bytea)"
q a "SELECT camperso.create_source('m', '$BS', 'mixed', 't', options => '{\"batch_size\": 1000, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('m')" >/dev/null

# ---- the corpus: one file per message, <number>.<expected rule>
W=$CAMPERSO_TEST_WORK/corpus
mkdir -p "$W"
c() { printf "$2" >"$W/$1"; }
deep_arr=$(printf '%0.s[' $(seq 1 5000))$(printf '%0.s]' $(seq 1 5000))
deep_obj=$(for i in $(seq 1 600); do printf '{"a":'; done; printf 1; printf '%0.s}' $(seq 1 600))
c 01.malformed_json '{"n":1,'
c 02.malformed_json '{"n":1}}'
c 03.malformed_json '{"n":01}'
c 04.malformed_json '{n:1}'
c 05.malformed_json "{\"n\":1,\"k\":\"a\tb\"}"
c 06.malformed_json '{"n":1,"k":"\\ud800"}'
c 07.malformed_json '\xef\xbb\xbf{"n":1}'
c 09.malformed_json '   '
c 10.malformed_json '{"n":NaN}'
c 11.invalid_utf8 '{"n":1,"k":"caf\xe9"}'
c 12.invalid_utf8 '{"n":1,"k":"\xc0\xaf"}'
c 13.invalid_utf8 '{"n":1,"k":"\xf4\x90\x80\x80"}'
c 14.nul_byte '\xff\xfe{\x00"\x00n\x00"\x00:\x001\x00}\x00'
c 15.nul_byte '{"n":1,"k":"\\u0000"}'
c 16.not_an_object '"just a string"'
c 17.not_an_object 'null'
c 18.not_an_object '[{"n":1}]'
printf '{"n":1,"props":%s}' "$deep_arr" >"$W/19.too_deep"
printf '{"n":1,"props":%s}' "$deep_obj" >"$W/20.too_deep"
printf '%s' "$deep_arr" >"$W/21.too_deep"
c 22.wrong_type '{"n":"12"}'
c 23.wrong_type '{"n":1.5}'
c 24.wrong_type '{"n":true}'
c 25.wrong_type '{"n":{"v":1}}'
c 26.wrong_type '{"n":[1]}'
c 27.wrong_type '{"n":1e400}'
c 28.out_of_range '{"n":4294967296}'
c 29.out_of_range '{"n":1,"amount":12345678.5}'
c 30.wrong_type '{"n":1,"flag":"yes"}'
c 31.wrong_type '{"n":1,"uid":"not-a-uuid"}'
c 32.out_of_range '{"n":1,"ts":"2024-13-45T99:00:00Z"}'
c 32b.wrong_type '{"n":1,"ts":"not a time"}'
c 33.wrong_type '{"n":1,"ip":"999.1.1.1"}'
c 34.out_of_range '{"n":1,"day":"2024-02-30"}'
c 35.too_long '{"n":1,"k":"this is far longer than twenty"}'
c 36.not_null '{"k":"no n at all"}'
c 37.not_null '{"n":null}'
c 38.check_violation '{"n":1,"code":-5}'
c 39.wrong_type '{"n":1,"k":["a"]}'
c 40.out_of_range '{"n":1,"amount":1e999999999}'
# incompressible, so its record batch is above fetch.message.max.bytes (1 MB)
head -c 1100000 /dev/urandom | base64 -w0 | awk '{ printf "{\"n\":1,\"k\":\"%s\"}", $0 }' >"$W/41.oversized"
head -c 2000000 /dev/zero | tr '\0' 'y' | awk '{ printf "{\"n\":1,\"props\":\"%s\"}", $0 }' >"$W/42.oversized"
c 43.malformed_json '{"n":1,"k":"\\x41"}'
c 44.malformed_json '{"n":1,"n":}'
c 45.wrong_type '{"n":1,"n":"last one wins"}'
c 46.malformed_json '{"n":1} {"n":2}'
c 47.wrong_type '{"n":-0.0}'
c 48.out_of_range '{"n":1,"seq":-2147483649}'
files=("$W"/*)
NC=${#files[@]}
note "corpus of $NC hostile messages, $ROUNDS rounds, $GOOD_PER_ROUND good messages per round"

# good messages: n > 0 unique, k short, every typed column valid
good() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		for (i = a; i <= b; i++)
			printf "g%d\t{\"n\":%d,\"k\":\"g%d\",\"seq\":%d,\"ts\":\"2024-05-01T12:00:00Z\",\"amount\":12.5,\"flag\":true,\"uid\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\",\"props\":{\"x\":[1,2]},\"ip\":\"10.0.0.1\",\"day\":\"2024-05-01\",\"code\":3}\n", i % 31, i, i % 31, i
	}'
}
poison() { # every corpus message once, into partition $1
	local f
	for f in "${files[@]}"; do
		cat "$f"
		printf '\x1e'
	done | kcat -b "$BS" -P -t mixed -p "$1" -D $'\x1e' -X message.max.bytes=10000000 -z lz4 ||
		fail "kcat -P of the corpus failed"
	# an empty message and a null one (a tombstone)
	printf 'empty\t\n' | kcat -b "$BS" -P -t mixed -p "$1" -K '\t' || fail "kcat -P failed"
	printf 'null\t\n' | kcat -b "$BS" -P -t mixed -p "$1" -K '\t' -Z || fail "kcat -P failed"
}

pid=$(worker_pids a m)
wait_for 30 "the worker to start" test -n "$pid"
g=0
for r in $(seq 1 "$ROUNDS"); do
	good $((g + 1)) $((g + GOOD_PER_ROUND / 2)) | kafka_produce k mixed -K '\t' || fail "kcat -P failed"
	poison $((r - 1))
	good $((g + GOOD_PER_ROUND / 2 + 1)) $((g + GOOD_PER_ROUND)) | kafka_produce k mixed -K '\t' || fail "kcat -P failed"
	g=$((g + GOOD_PER_ROUND))
	# the good messages behind this round of poison land before the next round
	wait_for 90 "round $r: the good messages behind the poison to land" rows_eq a t "$g"
	note "round $r: $g good messages landed, $(q a "SELECT count(*) FROM camperso.quarantine") quarantined"
done
NC=$((NC + 2))
TOTAL=$((g + ROUNDS * NC))
all_in() { [ "$(q a "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM camperso.quarantine)")" -ge "$TOTAL" ]; }
wait_for 90 "every message to be landed or quarantined" all_in
sleep 0.5

assert_eq "$g|$((ROUNDS * NC))" "$(q a "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM camperso.quarantine)")" \
	"every good message landed and every hostile one is quarantined"
assert_eq "$g" "$(q a "SELECT count(DISTINCT n) FROM t WHERE n > 0")" "the good ones are the ones that landed"
# each corpus message, by its md5, is quarantined ROUNDS times with the expected rule
q a "CREATE TABLE corpus (name text, rule text, md5 text)"
for f in "${files[@]}"; do
	name=$(basename "$f")
	echo "${name%%.*} ${name#*.} $(md5sum <"$f" | cut -d' ' -f1)"
done | cluster_psql a -d postgres -c "\\copy corpus FROM STDIN WITH (DELIMITER ' ')"
wrong=$(q a "SELECT string_agg(c.name || '.' || c.rule || ' got ' || coalesce(x.rules, 'nothing'), '; ' ORDER BY c.name)
             FROM corpus c LEFT JOIN (SELECT md5(payload) AS md5, string_agg(DISTINCT rule, ',') AS rules, count(*) AS n
                                      FROM camperso.quarantine GROUP BY 1) x ON x.md5 = c.md5
             WHERE x.rules IS DISTINCT FROM c.rule OR x.n <> $ROUNDS")
[ -z "$wrong" ] || fail "quarantine rules differ from the corpus: $wrong"
assert_eq "$((2 * ROUNDS))|malformed_json" "$(q a "SELECT count(*) || '|' || string_agg(DISTINCT rule, ',') FROM camperso.quarantine
                                               WHERE length(payload) = 0 AND key IN ('empty', 'null')")" \
	"empty and null messages are quarantined as malformed_json"
echo "ok - each of the $NC hostile messages is quarantined $ROUNDS times, byte-exact, with its rule"
assert_eq 0 "$(q a "SELECT count(*) FROM camperso.quarantine WHERE reason IS NULL OR reason = '' OR partition IS NULL OR \"offset\" IS NULL")" \
	"every quarantined message has a reason, a partition and an offset"
q a "SELECT rule, count(*), left(min(reason), 70) FROM camperso.quarantine GROUP BY rule ORDER BY rule"
assert_eq "$pid" "$(worker_pids a m)" "the worker stayed up through the poison"
assert_eq 0 "$(q a "SELECT errors FROM camperso.stat_sources WHERE source = 'm' AND partition IS NULL")" \
	"hostile messages are not worker errors"
assert_eq "$TOTAL" "$(kafka_count k mixed)" "the embedded kafka still holds every message (none evicted)"
kafka_truth k mixed a truth
check_delivery a t m truth
