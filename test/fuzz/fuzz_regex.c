/*-------------------------------------------------------------------------
 *
 * fuzz_regex.c
 *	  libFuzzer target: the DFA fast path of the "regex" rule
 *	  (src/validate/regex_dfa.c). An input is a pattern, then values, one a
 *	  line:
 *
 *	    ^https?://[^ /?#]+([/?#]\S*)?$
 *	    https://shop.example.com/a
 *	    ftp://x
 *
 * The DFA is compiled once per input and its state cache kept from value
 * to value (as a ruleset keeps it), every value tried twice so the cached
 * transitions are taken too. Whenever it gives a verdict (not -1), that
 * verdict must be the regex engine's on the whole pattern: here the C
 * library's, with the patterns written in its dialect (regex_posix.c), and
 * the same engine answers the DFA's questions about character classes, so
 * any disagreement is the DFA's construction or matching at fault.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>

#include "catalog/pg_collation_d.h"
#include "mb/pg_wchar.h"

#include "validate/validate.h"
#include "pg_shim.h"

#define MAX_PATTERN		256
#define MAX_VALUES		64

/* The engine's verdict on value: 1 match, 0 none. */
static int
EngineMatch(regex_t *re, const char *value, int len)
{
	pg_wchar   *w = palloc((len + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(value, w, len);
	int			rc = pg_regexec(re, w, wlen, 0, NULL, 0, NULL, 0);

	FUZZ_CHECK(rc == REG_OKAY || rc == REG_NOMATCH, "pg_regexec returned %d", rc);
	pfree(w);
	return rc == REG_OKAY;
}

/*
 * Patterns the C library's engine is too slow or too big for, so they are
 * not tried: a quantifier right after a quantifier (a**, a+{2}) and empty
 * or many alternatives (a||b, (|a), more than 6 bars), whose closures its
 * regcomp takes exponential time over inside nested loops, and bounds
 * {m,n} whose product passes 4096 (it copies the repeated part that many
 * times). The DFA refuses most of these anyway (at most 256 NFA nodes).
 */
static bool
TooCostly(const char *p)
{
	int64		product = 1;
	int			bars = 0;

	if (strstr(p, "||") || strstr(p, "(|") || strstr(p, "|)"))
		return true;
	for (; p[0]; p++)
	{
		if (p[0] == '|' && ++bars > 6)
			return true;
		if (p[1] && strchr("*+?}", p[0]) != NULL && strchr("*+?{", p[1]) != NULL)
			return true;
		if (p[0] == '{')
		{
			int64		bound = 0;
			const char *q;

			for (q = p + 1; (*q >= '0' && *q <= '9') || *q == ','; q++)
			{
				if (*q == ',')
					bound = 0;
				else if (bound < 100000)
					bound = bound * 10 + (*q - '0');
			}
			product *= Max(bound, 1);
			if (product > 4096)
				return true;
		}
	}
	return false;
}

static void
CheckInput(const char *data, int size)
{
	const char *nl = memchr(data, '\n', size);
	int			plen = nl ? (int) (nl - data) : size;
	char	   *pattern;
	pg_wchar   *wpat;
	int			wlen;
	regex_t		re;
	ValidateRegexDfa *dfa;
	const char *p;
	const char *end = data + size;
	int			nvalues = 0;

	if (plen > MAX_PATTERN || memchr(data, '\0', plen) != NULL || !FuzzUtf8Valid(data, plen))
		return;
	pattern = pnstrdup(data, plen);
	if (TooCostly(pattern))
		return;
	wpat = palloc((plen + 1) * sizeof(pg_wchar));
	wlen = pg_mb2wchar_with_len(pattern, wpat, plen);
	if (pg_regcomp(&re, wpat, wlen, REG_ADVANCED, DEFAULT_COLLATION_OID) != REG_OKAY)
		return;					/* add_rule would refuse it */

	dfa = ValidateRegexDfaCompile(pattern, plen, DEFAULT_COLLATION_OID);
	if (dfa != NULL && nl != NULL)
	{
		for (p = nl + 1; p <= end && nvalues < MAX_VALUES; nvalues++)
		{
			const char *vend = memchr(p, '\n', end - p);
			int			vlen;
			int			round;

			if (vend == NULL)
				vend = end;
			vlen = (int) (vend - p);
			for (round = 0; round < 2; round++)
			{
				int			verdict = ValidateRegexDfaMatch(dfa, p, vlen);

				FUZZ_CHECK(verdict >= -1 && verdict <= 1, "DFA verdict %d", verdict);
				if (verdict >= 0 && memchr(p, '\0', vlen) == NULL)
					FUZZ_CHECK(verdict == EngineMatch(&re, p, vlen),
							   "pattern /%s/ on \"%.*s\": DFA says %d, the engine %d",
							   pattern, vlen, p, verdict, !verdict);
			}
			p = vend + 1;
		}
	}
	pg_regfree(&re);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FuzzShimInit();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return FuzzRunInput(CheckInput, "the regex DFA", data, size);
}
