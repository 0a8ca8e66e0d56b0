/*-------------------------------------------------------------------------
 *
 * regex_posix.c
 *	  The regex engine of the fuzz build: POSIX extended regular
 *	  expressions from the C library, behind the three calls pg_shim.c
 *	  needs for pg_regcomp/pg_regexec/pg_regfree.
 *
 * PostgreSQL's own regex engine is not part of the fuzz build (it is not
 * camperso's code and comes with the whole backend); what the fuzzer
 * exercises is camperso's side of a regex rule: the conversion of the
 * value to pg_wchar, the reusable buffer and its growth. This file must
 * not include PostgreSQL headers, whose regex.h renames the POSIX types.
 *
 *-------------------------------------------------------------------------
 */
#include <regex.h>
#include <stdlib.h>

#include "regex_posix.h"

void *
PosixRegCompile(const char *pattern, char *errbuf, size_t errlen)
{
	regex_t    *re = malloc(sizeof(regex_t));
	int			rc;

	if (re == NULL)
		abort();
	rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
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
