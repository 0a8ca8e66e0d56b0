/*-------------------------------------------------------------------------
 *
 * regex_posix.c
 *	  The regex engine of the fuzz build: POSIX extended regular
 *	  expressions from the C library, behind the calls pg_shim.c needs for
 *	  pg_regcomp/pg_regexec/pg_regfree.
 *
 * PostgreSQL's own regex engine is not part of the fuzz build (it is not
 * camperso's code and comes with the whole backend). What the fuzzers
 * exercise is camperso's side of a regex rule: the conversion of values to
 * pg_wchar and its buffer, and the DFA fast path (src/validate/regex_dfa.c),
 * which asks the engine what its character classes hold and must then give
 * the engine's verdict on every value.
 *
 * For that comparison to mean something, the patterns of the DFA's subset
 * must mean here what they mean in an ARE. They are written as ERE before
 * regcomp() sees them: (?: becomes (, the class escapes \d \D \s \S \w \W
 * become bracket expressions, and any other escaped punctuation becomes
 * that literal character (GNU regcomp reads \< \> \` \' as anchors).
 * Bracket expressions are copied as they are, so a class means the same in
 * a whole pattern and alone; one holding a backslash is refused. This file must not include PostgreSQL
 * headers, whose regex.h renames the POSIX types.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regex_posix.h"

/*
 * The ERE for an ARE pattern of the DFA's subset (malloc'ed), or NULL when
 * a bracket expression holds a backslash (an escape in an ARE, a literal in
 * an ERE): such patterns count as not compiling, here and alone.
 */
static char *
AreToEre(const char *p)
{
	char	   *out = malloc(strlen(p) * 14 + 1);
	char	   *o = out;

	if (out == NULL)
		abort();
	while (*p)
	{
		if (*p == '[')
		{
			/* copy the bracket expression whole: [, ^, a leading ], ... ] */
			*o++ = *p++;
			if (*p == '^')
				*o++ = *p++;
			if (*p == ']')
				*o++ = *p++;
			while (*p && *p != ']')
			{
				/* an ARE escape inside brackets has no ERE spelling */
				if (*p == '\\')
				{
					free(out);
					return NULL;
				}
				*o++ = *p++;
			}
			if (*p)
				*o++ = *p++;
		}
		else if (p[0] == '(' && p[1] == '?' && p[2] == ':')
		{
			*o++ = '(';
			p += 3;
		}
		else if (p[0] == '\\' && p[1] != '\0')
		{
			const char *rep = NULL;
			char		c = p[1];

			switch (c)
			{
				case 'd':
					rep = "[0-9]";
					break;
				case 'D':
					rep = "[^0-9]";
					break;
				case 's':
					rep = "[[:space:]]";
					break;
				case 'S':
					rep = "[^[:space:]]";
					break;
				case 'w':
					rep = "[[:alnum:]_]";
					break;
				case 'W':
					rep = "[^[:alnum:]_]";
					break;
			}
			if (rep != NULL)
			{
				strcpy(o, rep);
				o += strlen(rep);
			}
			else if (c == '^' || c == '\\')
			{
				*o++ = '\\';
				*o++ = c;
			}
			else if (!isalnum((unsigned char) c))
			{
				*o++ = '[';
				*o++ = c;
				*o++ = ']';
			}
			else
			{
				*o++ = '\\';
				*o++ = c;
			}
			p += 2;
		}
		else
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

void *
PosixRegCompile(const char *pattern, char *errbuf, size_t errlen)
{
	regex_t    *re = malloc(sizeof(regex_t));
	char	   *ere = AreToEre(pattern);
	int			rc;

	if (re == NULL)
		abort();
	if (ere == NULL)
	{
		snprintf(errbuf, errlen, "backslash in a bracket expression");
		free(re);
		return NULL;
	}
	rc = regcomp(re, ere, REG_EXTENDED | REG_NOSUB);
	free(ere);
	if (rc != 0)
	{
		regerror(rc, re, errbuf, errlen);
		free(re);
		return NULL;
	}
	return re;
}

int
PosixRegMatch(void *re, const char *subject)
{
	return regexec((regex_t *) re, subject, 0, NULL, 0) == 0;
}

void
PosixRegFree(void *re)
{
	regfree((regex_t *) re);
	free(re);
}
