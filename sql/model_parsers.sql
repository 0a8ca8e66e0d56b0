-- The model's parsers: camperso.url_host and camperso.url_path (dim_page),
-- camperso.parse_user_agent (dim_device). The URL parsers are inlined into
-- the load's query (plain SQL, every name qualified), so a caller's
-- search_path cannot steer them.
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q;
END $$;
SELECT u, camperso.url_host(u) AS host, camperso.url_path(u) AS path
  FROM (VALUES ('https://Shop.Example.COM/cart?x=1#top'), ('http://user:pw@host.example:8080/a/b/'),
			   ('https://[2001:db8::1]:443/v6'), ('HTTPS://example.com'), ('https://example.com?q'),
			   ('ftp://files.example/pub/f.txt'), ('/relative/path'), ('not a url'), (''), (NULL),
			   ('https://example.com/caf%C3%A9/ü'), ('mailto:someone@example.com')) v(u);
-- Inlined: the plan holds the expressions, not calls of the functions.
CREATE TEMP TABLE urls (u text);
SELECT count(*) AS calls_left FROM (SELECT regexp_matches(string_agg(x, E'\n'), 'url_(host|path)\(', 'g') FROM pg_temp.plan_of('SELECT camperso.url_host(u), camperso.url_path(u) FROM urls') x) y;
-- A hostile search_path (objects before pg_catalog) changes nothing.
CREATE SCHEMA evil;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned' $$;
CREATE FUNCTION evil."substring"(text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned' $$;
CREATE FUNCTION evil.always(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR evil.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.always);
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.always);
SET search_path = evil, pg_catalog;
SELECT camperso.url_host('https://A.example/x') AS host, camperso.url_path('https://A.example/x') AS path,
	   camperso.url_path('not a url') AS not_url, camperso.url_path('https://A.example') AS empty_path;
RESET search_path;
DROP SCHEMA evil CASCADE;
SELECT u, (camperso.parse_user_agent(u)).*
  FROM (VALUES ('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'),
			   ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0'),
			   ('Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'), (''), (NULL)) v(u);
