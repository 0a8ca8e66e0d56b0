/*-------------------------------------------------------------------------
 *
 * pg_shim.h
 *	  What the fuzz targets (test/fuzz/fuzz_*.c) need from pg_shim.c, the
 *	  stand-in for the parts of the PostgreSQL backend that camperso's
 *	  decode and validation code calls.
 *
 * Each input runs in a fresh memory context (FuzzInputBegin) that is
 * deleted afterwards (FuzzInputEnd), so everything the code under test
 * allocates is freed per input and AddressSanitizer sees any use after
 * the reset. An ERROR that escapes the code under test is a finding:
 * bad message content must give a clean failure (a rule and a reason),
 * never an ERROR, so the targets catch it and call FuzzEscapedError.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_FUZZ_SHIM_H
#define CAMPERSO_FUZZ_SHIM_H

#include "postgres.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Sets up the top contexts; called from LLVMFuzzerInitialize. */
extern void FuzzShimInit(void);

/* A fresh context for one input, made current. */
extern MemoryContext FuzzInputBegin(void);

/* Back to TopMemoryContext; deletes the input's context. */
extern void FuzzInputEnd(MemoryContext cxt);

/*
 * Runs check over one input in a fresh context, as a target's
 * LLVMFuzzerTestOneInput: an ERROR escaping check is a finding (reported
 * as escaping "what"). Returns what LLVMFuzzerTestOneInput returns.
 */
extern int	FuzzRunInput(void (*check) (const char *data, int len), const char *what,
						 const uint8_t *data, size_t size);

/* Prints the pending ERROR (which escaped "what") and aborts. */
extern void FuzzEscapedError(const char *what) pg_attribute_noreturn();

/*
 * Whether s[0..len) is valid UTF-8 without NUL bytes, as PostgreSQL's
 * verifier sees it.
 */
extern bool FuzzUtf8Valid(const char *s, int len);

/*
 * Whether text[0..len) is one JSON value to PostgreSQL's own parser (the
 * frontend build of src/common/jsonapi.c, which jsonb_in shares), parsing
 * as jsonb_in does. It recurses per nesting level: keep inputs shallow.
 */
extern bool FuzzJsonValid(const char *text, int len);

/*
 * The fixed "now" of every run (2024-05-01 12:00:00 UTC), so that
 * not_future and max_age give the same verdict on every machine and day.
 */
#define FUZZ_NOW_UNIX	INT64CONST(1714564800)

/* An invariant of the code under test; a failure aborts with a message. */
#define FUZZ_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", \
					__FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
			abort(); \
		} \
	} while (0)

#endif							/* CAMPERSO_FUZZ_SHIM_H */
