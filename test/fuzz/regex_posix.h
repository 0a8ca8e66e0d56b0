/*
 * regex_posix.h
 *	  POSIX regular expressions for the fuzz build's pg_regcomp/pg_regexec
 *	  (see regex_posix.c). Patterns and subjects are NUL-terminated UTF-8.
 */
#ifndef CAMPERSO_FUZZ_REGEX_POSIX_H
#define CAMPERSO_FUZZ_REGEX_POSIX_H

#include <stddef.h>

/* A compiled pattern, or NULL with the error in errbuf. */
extern void *PosixRegCompile(const char *pattern, char *errbuf, size_t errlen);

/* 1 when subject matches. */
extern int	PosixRegMatch(void *re, const char *subject);

extern void PosixRegFree(void *re);

#endif							/* CAMPERSO_FUZZ_REGEX_POSIX_H */
