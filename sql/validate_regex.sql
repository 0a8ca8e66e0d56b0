-- The regex rule's verdict is PostgreSQL's: the cached DFA of regex_dfa.c
-- (ASCII values, a subset of patterns) and the fallback to pg_regexec must
-- agree with the ~ operator on every pattern and value.
SET client_min_messages = warning;

CREATE TEMP TABLE rx_patterns (id int, pattern text);
INSERT INTO rx_patterns VALUES
	(1, '^https?://[^\s/?#]+([/?#]\S*)?$'),
	(2, '^[a-c]{2,3}$'),
	(3, 'ab|c/'),
	(4, '^(a|b)*c$'),
	(5, '^\d{1,2}[.:]\d$'),
	(6, 'a+b?c*'),
	(7, '^$'),
	(8, '^[]a-]+$'),
	(9, '^[^]a]*$'),
	(10, '\.\s'),
	(11, '^\w+:\W'),
	(12, '^(?:ab|c){2}'),
	(13, 'b{0}c$'),
	(14, '^[[:alpha:]]+$'),			-- outside the subset: pg_regexec
	(15, '(a|b)*a(a|b){10}'),		-- more DFA states than the cache holds
	(16, '^a*?b'),					-- non-greedy: pg_regexec
	(17, '^(a|)+b$'),
	(18, '^((a|b)c?)+$'),
	(19, '\$|#$'),
	(20, '^.\S.$');
SELECT count(*) AS rulesets FROM rx_patterns, LATERAL camperso.add_rule('rx_' || id, 'v', 'regex', to_jsonb(pattern));

CREATE TEMP TABLE rx_values (v text);
-- every string of up to 3 characters over a small alphabet
WITH RECURSIVE a(c) AS (VALUES ('a'), ('b'), ('c'), ('/'), (' '), ('.'), (':'), ('1'), ('#')),
s(v, n) AS (SELECT '', 0 UNION ALL SELECT s.v || a.c, s.n + 1 FROM s, a WHERE s.n < 3)
INSERT INTO rx_values SELECT v FROM s;
-- long a/b strings, URLs, non-ASCII, control characters
INSERT INTO rx_values
SELECT translate(substr(md5(i::text) || md5((i * 7)::text), 1, 12 + i % 9), '0123456789abcdef', 'aabbabababbaabab')
  FROM generate_series(1, 300) i;
INSERT INTO rx_values VALUES
	('https://shop.example.com/'), ('http://x.org/a?b=c#d'), ('https://a b/'), ('https://'), ('https://x.org'),
	('https://x.org/ tail'), ('javascript:alert(1)'), ('HTTPS://X.ORG/'), ('https://exämple.com/'),
	('https://x.org/é'), ('é'), ('ab' || chr(233)), (E'a\tb'), (E'a\nb'), (E'https://x.org/\n'),
	(E'\u00a0'), ('12.5'), ('1:2'), ('word: x'), ('word:x'), ('abab'), ('cc'), ('x.$'), ('#');

SELECT count(*) AS checked,
	   count(*) FILTER (WHERE NOT EXISTS (SELECT FROM camperso.validate('rx_' || p.id, jsonb_build_object('v', x.v)))) AS passed,
	   count(*) FILTER (WHERE NOT EXISTS (SELECT FROM camperso.validate('rx_' || p.id, jsonb_build_object('v', x.v)))
							  IS DISTINCT FROM (x.v ~ p.pattern)) AS disagreements
  FROM rx_patterns p, rx_values x;

-- what disagrees, if anything
SELECT p.id, p.pattern, x.v, x.v ~ p.pattern AS operator
  FROM rx_patterns p, rx_values x
 WHERE NOT EXISTS (SELECT FROM camperso.validate('rx_' || p.id, jsonb_build_object('v', x.v)))
	   IS DISTINCT FROM (x.v ~ p.pattern)
 ORDER BY 1, 3 LIMIT 20;

-- the reason of a failure names the value and the pattern, on both paths
SELECT * FROM camperso.validate('rx_1', '{"v": "javascript:alert(1)"}');
SELECT * FROM camperso.validate('rx_1', '{"v": "https://exämple .com/"}');

SELECT count(*) FROM rx_patterns, LATERAL camperso.drop_ruleset('rx_' || id);
