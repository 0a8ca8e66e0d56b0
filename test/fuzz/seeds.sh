#!/usr/bin/env bash
# test/fuzz/seeds.sh — writes the hand-made seeds of the fuzz corpus
# (test/fuzz/corpus/<target>/seed-*), so that what they are is readable
# here rather than only as bytes. Run it after changing a seed; it needs
# tools/camperso-gen (make) for the generator's events. Files that fuzzing
# added (named by their SHA-1, or regress-* for fixed bugs) are left alone.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
GEN=$ROOT/tools/camperso-gen
[ -x "$GEN" ] || { echo "seeds: build tools/camperso-gen first (make)" >&2; exit 1; }

C=$HERE/corpus
mkdir -p "$C/decode" "$C/validate" "$C/mapping" "$C/regex"
rm -f "$C"/*/seed-*

# seed TARGET NAME BYTES (printf format: \xNN, \\ and \n are bytes)
seed() {
	# shellcheck disable=SC2059
	printf -- "$3" >"$C/$1/seed-$2"
}

# deep NAME LEVELS: {"a": [[...]]} with LEVELS containers in all
deep() {
	local n=$(($2 - 1))
	{ printf '{"a":'; head -c "$n" /dev/zero | tr '\0' '['; head -c "$n" /dev/zero | tr '\0' ']'; printf '}'; } \
		>"$C/decode/seed-$1"
}

# ---- the generator: valid events and profile updates, then its bad lines
i=0
while IFS= read -r line; do
	printf '%s' "$line" >"$C/decode/seed-gen-event-$i"
	printf '%s' "$line" >"$C/validate/seed-gen-event-$i"
	i=$((i + 1))
done < <("$GEN" --events 8 --seed 11 --invalid-rate 0)
i=0
while IFS= read -r line; do
	printf '%s' "$line" >"$C/decode/seed-gen-user-$i"
	i=$((i + 1))
done < <("$GEN" --events 2 --seed 11 --users-topic)
i=0
while IFS= read -r line; do
	printf '%s' "$line" >"$C/decode/seed-gen-invalid-$i"
	printf '%s' "$line" >"$C/validate/seed-gen-invalid-$i"
	i=$((i + 1))
done < <("$GEN" --events 24 --seed 5 --invalid-rate 1 | awk 'length($0) < 4096')

# ---- decode: shapes, escapes, numbers, encodings, truncation
seed decode empty ''
seed decode spaces ' \t\r\n'
seed decode empty-object '{}'
seed decode nested-empty '{"a":{},"b":[],"c":[{}],"d":{"e":[]}}'
seed decode array '[1,{"a":2}]'
seed decode string '"just a string"'
seed decode number '-12.5e3'
seed decode literals '{"t":true,"f":false,"n":null}'
seed decode top-literal 'null'
seed decode duplicate-keys '{"a":1,"a":"two","a":{"x":3},"a":null}'
seed decode escapes '{"q":"\\"\\\\\\/\\b\\f\\n\\r\\t","u":"\\u00e9\\u20AC\\ud83d\\ude00","k\\u00e9y":1}'
seed decode escaped-key-nested '{"a":{"\\"":"\\\\","\\u0041":[1,"\\n"]}}'
seed decode lone-high-surrogate '{"a":"\\ud800"}'
seed decode lone-low-surrogate '{"a":"\\udc00x"}'
seed decode high-then-other '{"a":"\\ud800\\u0041"}'
seed decode high-high '{"a":"\\ud800\\ud800"}'
seed decode bad-escape '{"a":"\\x41"}'
seed decode short-unicode '{"a":"\\u12"}'
seed decode escaped-nul '{"a":"x\\u0000y"}'
seed decode escaped-nul-nested '{"a":["\\u0000"]}'
seed decode nul-byte '{"a":"x\x00y"}'
seed decode control-char '{"a":"x\x01y"}'
seed decode tab-in-string '{"a":"x\ty"}'
seed decode del-char '{"a":"x\x7fy"}'
seed decode utf8-ok '{"caf\xc3\xa9":"\xe2\x82\xac\xf0\x9f\x98\x80"}'
seed decode utf8-overlong '{"a":"\xc0\x80"}'
seed decode utf8-overlong3 '{"a":"\xe0\x80\xaf"}'
seed decode utf8-surrogate '{"a":"\xed\xa0\x80"}'
seed decode utf8-above-max '{"a":"\xf4\x90\x80\x80"}'
seed decode utf8-truncated '{"a":"\xe2\x82"}'
seed decode utf8-truncated-end '{"a":"\xe2'
seed decode utf8-stray-continuation '{"a":"\x80"}'
seed decode utf8-ff '{"a":1}\xff'
seed decode utf8-in-key '{"\xff":1}'
seed decode utf8-outside-string '{"a":\xc3\xa9}'
seed decode bom '\xef\xbb\xbf{"a":1}'
seed decode numbers '{"a":0,"b":-0,"c":1.5,"d":-1e10,"e":1E+2,"f":2e-3,"g":123456789012345678901234567890}'
seed decode int64-edges '{"a":9223372036854775807,"b":-9223372036854775808,"c":9223372036854775808}'
seed decode num-max-int-digits '{"a":1e131071}'
seed decode num-too-many-int-digits '{"a":1e131072}'
seed decode num-max-scale '{"a":1e-16383}'
seed decode num-too-much-scale '{"a":1e-16384}'
seed decode num-zero-scale '{"a":0e-16383}'
seed decode num-zero-too-much-scale '{"a":0e-20000}'
seed decode num-zero-huge-exponent '{"a":0e1073741823}'
seed decode num-leading-fraction-zeros '{"a":0.001e131074}'
seed decode num-exponent-overflow '{"a":1e99999999999999999999}'
seed decode num-nested '{"a":[1e131072]}'
seed decode num-leading-zero '{"a":01}'
seed decode num-bare-minus '{"a":-}'
seed decode num-dot '{"a":1.}'
seed decode num-leading-dot '{"a":.5}'
seed decode num-bare-exponent '{"a":1e}'
seed decode num-exponent-sign '{"a":1e+}'
seed decode num-plus '{"a":+1}'
seed decode num-trailing-garbage '{"a":1x}'
seed decode literal-truncated '{"a":tru}'
seed decode literal-case '{"a":True}'
seed decode truncated-1 '{'
seed decode truncated-2 '{"a'
seed decode truncated-3 '{"a"'
seed decode truncated-4 '{"a":'
seed decode truncated-5 '{"a":"abc'
seed decode truncated-6 '{"a":1'
seed decode truncated-7 '{"a":[1,{"b":'
seed decode trailing-garbage '{"a":1} x'
seed decode two-objects '{}{}'
seed decode trailing-comma '{"a":1,}'
seed decode leading-comma '{,"a":1}'
seed decode missing-colon '{"a" 1}'
seed decode missing-comma '{"a":1 "b":2}'
seed decode unquoted-key '{a:1}'
seed decode single-quotes "{'a':1}"
seed decode array-trailing-comma '{"a":[1,]}'
seed decode mismatched '{"a":[1,2}'
seed decode mismatched-2 '{"a":{"b":]}}'
seed decode whitespace '\n\t {\r\n "a" \t:\n 1 ,\n"b":[ 1 , 2 ] } \n'
seed decode long-key "{\"$(head -c 3000 /dev/zero | tr '\0' k)\":1}"
seed decode many-keys "{$(for k in $(seq 1 300); do printf '"k%d":%d,' "$k" "$k"; done)\"end\":0}"
deep depth-511 511
deep depth-512 512
deep depth-513 513
deep depth-600 600
{ printf '['; head -c 700 /dev/zero | tr '\0' '{' ; } >"$C/decode/seed-deep-unclosed"

# ---- validate: each rule passing and failing
ok='"event_id":"95d7268b-bf03-4144-8bdc-5aa5fcabccce","user_id":"u1","session_id":"s1","event_type":"click","ts":"2024-05-01T11:00:00Z"'
seed validate minimal "{$ok}"
seed validate all-fields "{$ok,\"page_url\":\"https://shop.example.com/a?b=c\",\"props\":{\"x\":1},\"n\":-1000,\"amount\":0.5,\"big\":-9223372036854775808,\"flag\":true,\"tags\":[\"a\"],\"seen\":\"2025-01-01T00:00:00Z\",\"app_id\":\"caf\xc3\xa9-\xe2\x82\xac\",\"label\":\"ab-cd\",\"hits\":10}"
seed validate missing-required '{"user_id":"u1"}'
seed validate null-required '{"event_id":null,"user_id":"u1","session_id":"s1","event_type":"click","ts":"2024-05-01T11:00:00Z"}'
seed validate bad-uuid '{"event_id":"95d7268b-bf03-4144-8bdc-5aa5fcabccc","user_id":"u1","session_id":"s1","event_type":"click","ts":"2024-05-01T11:00:00Z"}'
seed validate braced-uuid '{"event_id":"{95D7268BBF03-4144-8BDC-5AA5FCABCCCE}","user_id":"u1","session_id":"s1","event_type":"click","ts":"2024-05-01T11:00:00Z"}'
seed validate uuid-number '{"event_id":42,"user_id":"u1","session_id":"s1","event_type":"click","ts":"2024-05-01T11:00:00Z"}'
seed validate event-type-not-in "{$ok,\"event_type\":\"hover\"}"
seed validate event-type-number "{$ok,\"event_type\":7}"
seed validate ts-offsets "{$ok,\"ts\":\"2024-05-01T16:30:00.123456+05:30\"}"
seed validate ts-compact-offset "{$ok,\"ts\":\"2024-05-01 03:00:00-0800\"}"
seed validate ts-round "{$ok,\"ts\":\"2024-05-01T11:00:00.9999995z\"}"
seed validate ts-future "{$ok,\"ts\":\"2024-05-01T12:06:00Z\"}"
seed validate ts-too-old "{$ok,\"ts\":\"2024-03-01T00:00:00Z\"}"
seed validate ts-bad-day "{$ok,\"ts\":\"2024-02-30T00:00:00Z\"}"
seed validate ts-leap-day "{$ok,\"ts\":\"2024-02-29T00:00:00Z\"}"
seed validate ts-local "{$ok,\"ts\":\"2024-05-01 11:00:00\"}"
seed validate ts-zone-name "{$ok,\"ts\":\"2024-05-01 11:00:00 Mars/Olympus\"}"
seed validate ts-epoch "{$ok,\"ts\":\"epoch\"}"
seed validate ts-infinity "{$ok,\"ts\":\"infinity\"}"
seed validate ts-minus-infinity "{$ok,\"ts\":\"-infinity\"}"
seed validate ts-number "{$ok,\"ts\":1714561200}"
seed validate user-id-long "{$ok,\"user_id\":\"$(head -c 65 /dev/zero | tr '\0' u)\"}"
seed validate user-id-multibyte "{$ok,\"user_id\":\"$(for _ in $(seq 1 64); do printf '\xe2\x82\xac'; done)\"}"
seed validate url-bad "{$ok,\"page_url\":\"ftp://x\"}"
seed validate url-long "{$ok,\"page_url\":\"https://x/$(head -c 2000 /dev/zero | tr '\0' p)\"}"
seed validate url-multibyte "{$ok,\"page_url\":\"https://x/$(for _ in $(seq 1 80); do printf '\xf0\x9f\x98\x80'; done) no\"}"
seed validate props-not-object "{$ok,\"props\":[1]}"
seed validate n-range "{$ok,\"n\":1001}"
seed validate n-not-int "{$ok,\"n\":1.5}"
seed validate n-out-of-int "{$ok,\"n\":2147483648}"
seed validate amount-edges "{$ok,\"amount\":1e6}"
seed validate amount-below "{$ok,\"amount\":0.49999}"
seed validate amount-string "{$ok,\"amount\":\"5\"}"
seed validate big-overflow "{$ok,\"big\":9223372036854775808}"
seed validate flag-false "{$ok,\"flag\":false}"
seed validate tags-long "{$ok,\"tags\":[$(for k in $(seq 1 60); do printf '"t%d",' "$k"; done)\"z\"]}"
seed validate seen-range "{$ok,\"seen\":\"2031-01-01T00:00:00Z\"}"
seed validate seen-not-time "{$ok,\"seen\":17}"
seed validate app-id-number "{$ok,\"app_id\":2.5}"
seed validate app-id-bool "{$ok,\"app_id\":false}"
seed validate app-id-long "{$ok,\"app_id\":\"$(for _ in $(seq 1 30); do printf '\xc3\xa9'; done)\"}"
seed validate label-bad "{$ok,\"label\":\"ab--cd\"}"
seed validate hits-big "{$ok,\"hits\":1e400}"
seed validate country-in "{$ok,\"country\":\"España\"}"
seed validate country-not-in "{$ok,\"country\":\"Atlantis €€€€€€€€€€€€€€€€€€€€€€€€€€€€€€\"}"
seed validate everything-wrong '{"event_id":"x","user_id":[],"session_id":null,"event_type":"?","ts":"never","page_url":1,"props":2,"n":"3","amount":true,"big":1.5,"flag":"yes","tags":{},"seen":"2019-01-01T00:00:00Z","app_id":3,"label":"X","hits":11}'

# ---- mapping: path, newline, message
msg='{"a":{"b":[10,{"c":"x\\u00e9"},null,true],"k e\\"y":{"z":1},"d":{"d":1,"d":2}},"s":"str","n":-1.5e3}'
seed mapping top "\$.s\n$msg"
seed mapping nested "\$.a.b[1].c\n$msg"
seed mapping index "\$.a.b[0]\n$msg"
seed mapping null "\$.a.b[2]\n$msg"
seed mapping bool "\$.a.b[3]\n$msg"
seed mapping past-end "\$.a.b[9]\n$msg"
seed mapping quoted-key "\$.a.\"k e\\\\\"y\".z\n$msg"
seed mapping duplicate "\$.a.d.d\n$msg"
seed mapping object "\$.a\n$msg"
seed mapping number "\$.n\n$msg"
seed mapping wrong-kind "\$.s.x\n$msg"
seed mapping index-on-object "\$.a[0]\n$msg"
seed mapping huge-index "\$.a.b[99999999999]\n$msg"
seed mapping no-key '$'
seed mapping empty-key '$..a'
seed mapping index-first '$[0]'
seed mapping unterminated '$."abc'
seed mapping bad-char '$.a!b'
seed mapping multibyte-char '$\xc3\xa9'
seed mapping no-dollar 'a.b'
# ---- regex: a pattern, then values
url='https://shop.example.com/products/12?x=1'
seed regex url "^https?://[^\\s/?#]+([/?#]\\S*)?\$\n$url\nftp://x\nhttps://\nhttps://a b\nhttps://a/b c"
seed regex url-ere "^https?://[^ /?#]+([/?#][^ ]*)?\$\n$url\nhttp://x/\nhttps:/x"
seed regex unanchored "ab+c\nxxabbbcyy\nac\nabc"
seed regex anchored-start "^(ab|cd)*e\nababcde\nabce\ne\nx"
seed regex anchored-end "[0-9]{2,4}\$\nabc12\n12345\n1"
seed regex bounds "^a{3}(b{1,2}|c{2,})?d?\$\naaa\naaab\naaabbb\naaacc\naaaccccd\naa"
seed regex classes "^\\d+\\.\\d*\\s\\w\\W\\D\$\n12.5 a!x\n1. _-y\n.5 a!x"
seed regex escapes "^\\(\\)\\[\\]\\{\\}\\.\\*\\+\\?\\|\\^\\\$\\\\\\/\$\n()[]{}.*+?|^\$\\/\n()"
seed regex noncapturing "^(?:x|y(?:z)+)+\$\nxyzzx\nxy\n"
seed regex dot ".\n\na\n\xc3\xa9"
seed regex nested-groups "^((((a)b)c)d)+\$\nabcdabcd\nabc"
seed regex empty-alternative "^(a|)b\$\nb\nab\naab"
seed regex bracket-edges "^[]a-]+[^]x]\$\n]a-b\n]]x\na"
seed regex many-states "(a|b)*a(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)\$\nabababababababab\nbbbbbbbbbbbbbbba\naaaaaaabbbbbbb\nbabababbbabababbabaab"
seed regex non-ascii-value "^a+\$\naaa\na\xc3\xa9a"
seed regex outside-subset "^(a+?)b\$\naab\n(?=x)"
seed regex backslash-in-bracket "^[\\d]+\$\n12\n\\d"
echo "seeds: $(find "$C" -name 'seed-*' | wc -l) seeds in $C"
