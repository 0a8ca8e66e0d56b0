/*-------------------------------------------------------------------------
 *
 * regex_dfa.c
 *	  A fast path for the "regex" rule: a lazily built DFA over ASCII input
 *	  whose states survive from one value to the next.
 *
 * PostgreSQL's regex engine builds its DFA afresh on every pg_regexec call,
 * so a URL pattern costs about a microsecond per value even when every
 * value looks alike. The rule's verdict only needs "is there a match", and
 * for the common subset of patterns that is a plain automaton question: this
 * file compiles such a pattern to a Thompson NFA once and caches the DFA
 * states it meets, so a value costs one table lookup per byte.
 *
 * Exactness: the verdict must be PostgreSQL's, so
 *	- every character class (bracket expressions, ".", \s \S \d \D \w \W)
 *	  is not interpreted here: its members among the ASCII characters
 *	  1..127 are asked of PostgreSQL's engine at compile time, with the
 *	  collation the rule itself uses;
 *	- a value holding any byte outside 1..127 is left to pg_regexec, as is
 *	  any pattern outside the subset below (-1 from the matcher, NULL from
 *	  the compiler), and any value that would need more DFA states than the
 *	  cache holds.
 * The subset: literals, escaped punctuation, the classes above, groups
 * ( ) and (?: ), alternation, the quantifiers * + ? {m} {m,} {m,n}, a ^ that
 * starts and a $ that ends a pattern without top-level alternation.
 * Non-greedy quantifiers, back references, lookahead, other escapes,
 * embedded options and directors are all left to PostgreSQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "regex/regex.h"
#include "utils/memutils.h"

#include "validate/validate.h"

#define DFA_MAX_NFA		256		/* NFA nodes of a pattern */
#define DFA_SET_WORDS	(DFA_MAX_NFA / 64)
#define DFA_MAX_STATES	512		/* cached DFA states per pattern */
#define DFA_MAX_CLASSES 64
#define DFA_MAX_DEPTH	32		/* group nesting */

/* A set of ASCII characters 0..127. */
typedef struct CharSet
{
	uint64		w[2];
} CharSet;

typedef enum NodeKind
{
	N_CHAR,						/* consume a char of class, go to out */
	N_SPLIT,					/* go to out and out2 */
	N_MATCH
} NodeKind;

typedef struct NfaNode
{
	NodeKind	kind;
	int16		cls;
	int16		out;
	int16		out2;
} NfaNode;

typedef struct DfaState
{
	uint64		set[DFA_SET_WORDS];
	bool		accept;
	bool		dead;			/* no NFA state left: nothing can match */
	bool		stop;			/* the verdict is known here: dead, or
								 * accepting without an anchored end */
	uint64		self[2];		/* the characters whose next[] is this state,
								 * as far as computed */
	struct DfaState *next[128]; /* NULL: not computed yet; pointers, not
								 * indexes, keep the per-byte chain of loads
								 * short */
} DfaState;

struct ValidateRegexDfa
{
	MemoryContext cxt;
	bool		anchored_start;
	bool		anchored_end;
	int			nnodes;
	NfaNode		nodes[DFA_MAX_NFA];
	int			start;
	int			nclasses;
	CharSet		classes[DFA_MAX_CLASSES];
	int			nstates;
	int			maxstates;
	DfaState  **states;
};

/* ----------------------------------------------------------------------
 * Parsing: a small AST, so that {m,n} can repeat a subexpression
 * ----------------------------------------------------------------------
 */

typedef enum AstKind
{
	A_EMPTY,
	A_CLASS,
	A_CAT,
	A_ALT,
	A_REP
} AstKind;

typedef struct Ast
{
	AstKind		kind;
	int			cls;			/* A_CLASS */
	int			min;			/* A_REP */
	int			max;			/* A_REP, -1: unbounded */
	struct Ast *a;				/* A_CAT, A_ALT: left; A_REP: child */
	struct Ast *b;				/* A_CAT, A_ALT: right */
} Ast;

typedef struct Parser
{
	const char *p;
	const char *end;
	int			depth;
	bool		ok;
	ValidateRegexDfa *dfa;
	Oid			collation;
} Parser;

static Ast *
NewAst(AstKind kind, Ast *a, Ast *b)
{
	Ast		   *n = palloc0(sizeof(Ast));

	n->kind = kind;
	n->a = a;
	n->b = b;
	return n;
}

/*
 * The ASCII members of the class written as atom (a bracket expression,
 * ".", or a class escape), as PostgreSQL's engine sees them.
 */
static int
ClassFromEngine(Parser *ps, const char *atom, int len)
{
	ValidateRegexDfa *dfa = ps->dfa;
	StringInfoData buf;
	pg_wchar   *wpat;
	int			wlen;
	regex_t		re;
	CharSet		set = {{0, 0}};
	int			c;

	if (dfa->nclasses == DFA_MAX_CLASSES)
	{
		ps->ok = false;
		return 0;
	}
	initStringInfo(&buf);
	appendStringInfoString(&buf, "^(?:");
	appendBinaryStringInfo(&buf, atom, len);
	appendStringInfoString(&buf, ")$");
	wpat = palloc((buf.len + 1) * sizeof(pg_wchar));
	wlen = pg_mb2wchar_with_len(buf.data, wpat, buf.len);
	if (pg_regcomp(&re, wpat, wlen, REG_ADVANCED, ps->collation) != REG_OKAY)
	{
		ps->ok = false;
		return 0;
	}
	for (c = 1; c < 128; c++)
	{
		pg_wchar	wc = (pg_wchar) c;
		int			rc = pg_regexec(&re, &wc, 1, 0, NULL, 0, NULL, 0);

		if (rc == REG_OKAY)
			set.w[c >> 6] |= UINT64CONST(1) << (c & 63);
		else if (rc != REG_NOMATCH)
			ps->ok = false;
	}
	pg_regfree(&re);
	dfa->classes[dfa->nclasses] = set;
	return dfa->nclasses++;
}

static int
ClassOfChar(Parser *ps, unsigned char c)
{
	ValidateRegexDfa *dfa = ps->dfa;
	CharSet		set = {{0, 0}};

	if (dfa->nclasses == DFA_MAX_CLASSES)
	{
		ps->ok = false;
		return 0;
	}
	set.w[c >> 6] = UINT64CONST(1) << (c & 63);
	dfa->classes[dfa->nclasses] = set;
	return dfa->nclasses++;
}

static Ast *ParseAlt(Parser *ps);

/* A bracket expression starting at ps->p ('['): its extent only. */
static Ast *
ParseBracket(Parser *ps)
{
	const char *start = ps->p;
	const char *q = ps->p + 1;
	Ast		   *n;

	if (q < ps->end && *q == '^')
		q++;
	if (q < ps->end && *q == ']')
		q++;
	while (q < ps->end && *q != ']')
	{
		if (*q == '[' && q + 1 < ps->end && (q[1] == ':' || q[1] == '=' || q[1] == '.'))
		{
			ps->ok = false;		/* [:alpha:] and friends: left to PostgreSQL */
			return NULL;
		}
		if (*q == '\\')
			q++;
		q++;
	}
	if (q >= ps->end)
	{
		ps->ok = false;
		return NULL;
	}
	ps->p = q + 1;
	n = NewAst(A_CLASS, NULL, NULL);
	n->cls = ClassFromEngine(ps, start, ps->p - start);
	return n;
}

static Ast *
ParseAtom(Parser *ps)
{
	unsigned char c = (unsigned char) *ps->p;
	Ast		   *n;

	switch (c)
	{
		case '(':
			ps->p++;
			if (ps->p < ps->end && *ps->p == '?')
			{
				if (ps->p + 1 < ps->end && ps->p[1] == ':')
					ps->p += 2;
				else
				{
					ps->ok = false; /* lookahead, embedded options */
					return NULL;
				}
			}
			if (++ps->depth > DFA_MAX_DEPTH)
			{
				ps->ok = false;
				return NULL;
			}
			n = ParseAlt(ps);
			ps->depth--;
			if (!ps->ok || ps->p >= ps->end || *ps->p != ')')
			{
				ps->ok = false;
				return NULL;
			}
			ps->p++;
			return n;
		case '[':
			return ParseBracket(ps);
		case '.':
			ps->p++;
			n = NewAst(A_CLASS, NULL, NULL);
			n->cls = ClassFromEngine(ps, ".", 1);
			return n;
		case '\\':
			if (ps->p + 1 >= ps->end)
				break;
			c = (unsigned char) ps->p[1];
			n = NewAst(A_CLASS, NULL, NULL);
			if (strchr("sSdDwW", c) != NULL)
				n->cls = ClassFromEngine(ps, ps->p, 2);
			else if (c >= 0x20 && c < 0x7f && !isalnum(c))
				n->cls = ClassOfChar(ps, c);
			else
				break;			/* other escapes: left to PostgreSQL */
			ps->p += 2;
			return n;
		default:
			if (c < 0x20 || c >= 0x7f || strchr("^$*+?{}[]()|", c) != NULL)
				break;
			ps->p++;
			n = NewAst(A_CLASS, NULL, NULL);
			n->cls = ClassOfChar(ps, c);
			return n;
	}
	ps->ok = false;
	return NULL;
}

static bool
ParseInt(Parser *ps, int *out)
{
	int			v = 0;

	if (ps->p >= ps->end || !isdigit((unsigned char) *ps->p))
		return false;
	while (ps->p < ps->end && isdigit((unsigned char) *ps->p))
	{
		v = v * 10 + (*ps->p++ - '0');
		if (v > 255)			/* RE_DUP_MAX */
			return false;
	}
	*out = v;
	return true;
}

static Ast *
ParsePiece(Parser *ps)
{
	Ast		   *atom = ParseAtom(ps);
	Ast		   *n;
	int			min,
				max;

	while (ps->ok && ps->p < ps->end && strchr("*+?{", *ps->p) != NULL)
	{
		char		q = *ps->p++;

		if (q == '*')
			min = 0, max = -1;
		else if (q == '+')
			min = 1, max = -1;
		else if (q == '?')
			min = 0, max = 1;
		else
		{
			if (!ParseInt(ps, &min))
			{
				ps->ok = false;
				return NULL;
			}
			max = min;
			if (ps->p < ps->end && *ps->p == ',')
			{
				ps->p++;
				max = -1;
				if (ps->p < ps->end && *ps->p != '}' && (!ParseInt(ps, &max) || max < min))
				{
					ps->ok = false;
					return NULL;
				}
			}
			if (ps->p >= ps->end || *ps->p != '}')
			{
				ps->ok = false;
				return NULL;
			}
			ps->p++;
		}
		/* a non-greedy quantifier changes the whole RE's preference */
		if (ps->p < ps->end && *ps->p == '?')
		{
			ps->ok = false;
			return NULL;
		}
		n = NewAst(A_REP, atom, NULL);
		n->min = min;
		n->max = max;
		atom = n;
	}
	return atom;
}

static Ast *
ParseCat(Parser *ps)
{
	Ast		   *n = NewAst(A_EMPTY, NULL, NULL);

	while (ps->ok && ps->p < ps->end && *ps->p != '|' && *ps->p != ')')
		n = NewAst(A_CAT, n, ParsePiece(ps));
	return n;
}

static Ast *
ParseAlt(Parser *ps)
{
	Ast		   *n = ParseCat(ps);

	while (ps->ok && ps->p < ps->end && *ps->p == '|')
	{
		ps->p++;
		n = NewAst(A_ALT, n, ParseCat(ps));
	}
	return n;
}

/* ----------------------------------------------------------------------
 * Thompson construction: Emit returns the entry node of ast's fragment,
 * whose exit leads to next.
 * ----------------------------------------------------------------------
 */

static int
AddNode(ValidateRegexDfa *dfa, NodeKind kind, int cls, int out, int out2, bool *ok)
{
	NfaNode    *n;

	if (dfa->nnodes == DFA_MAX_NFA)
	{
		*ok = false;
		return 0;
	}
	n = &dfa->nodes[dfa->nnodes];
	n->kind = kind;
	n->cls = cls;
	n->out = out;
	n->out2 = out2;
	return dfa->nnodes++;
}

static int
Emit(ValidateRegexDfa *dfa, Ast *ast, int next, bool *ok)
{
	int			entry;
	int			i;

	if (!*ok)
		return 0;
	switch (ast->kind)
	{
		case A_EMPTY:
			return next;
		case A_CLASS:
			return AddNode(dfa, N_CHAR, ast->cls, next, -1, ok);
		case A_CAT:
			return Emit(dfa, ast->a, Emit(dfa, ast->b, next, ok), ok);
		case A_ALT:
			return AddNode(dfa, N_SPLIT, -1, Emit(dfa, ast->a, next, ok),
						   Emit(dfa, ast->b, next, ok), ok);
		case A_REP:
			entry = next;
			if (ast->max < 0)
			{
				/* loop: split -> (child -> split) | next */
				int			split = AddNode(dfa, N_SPLIT, -1, -1, next, ok);

				if (!*ok)
					return 0;
				dfa->nodes[split].out = Emit(dfa, ast->a, split, ok);
				entry = split;
			}
			else
			{
				/* the optional copies, innermost first */
				for (i = ast->min; i < ast->max; i++)
					entry = AddNode(dfa, N_SPLIT, -1, Emit(dfa, ast->a, entry, ok), next, ok);
			}
			/* the mandatory copies */
			for (i = 0; i < ast->min; i++)
				entry = Emit(dfa, ast->a, entry, ok);
			return entry;
	}
	return next;
}

/*
 * A matcher for pattern (as stored in the rule) when it is in the subset of
 * the file header; NULL otherwise. Allocates in the current memory context,
 * which must live as long as the matcher (the ruleset's).
 */
ValidateRegexDfa *
ValidateRegexDfaCompile(const char *pattern, int len, Oid collation)
{
	ValidateRegexDfa *dfa = palloc0(sizeof(ValidateRegexDfa));
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext tmp = AllocSetContextCreate(cxt, "camperso regex dfa compile",
											  ALLOCSET_SMALL_SIZES);
	Parser		ps;
	Ast		   *ast;
	bool		ok = true;
	int			i;

	for (i = 0; i < len; i++)
		if ((unsigned char) pattern[i] >= 0x80 || pattern[i] == '\0')
			return NULL;

	dfa->cxt = cxt;
	MemoryContextSwitchTo(tmp);
	ps.p = pattern;
	ps.end = pattern + len;
	ps.depth = 0;
	ps.ok = true;
	ps.dfa = dfa;
	ps.collation = collation;
	if (ps.p < ps.end && *ps.p == '^')
	{
		dfa->anchored_start = true;
		ps.p++;
	}
	if (ps.end > ps.p && ps.end[-1] == '$' &&
		!(ps.end - ps.p >= 2 && ps.end[-2] == '\\'))
	{
		dfa->anchored_end = true;
		ps.end--;
	}
	ast = ParseAlt(&ps);
	if (!ps.ok || ps.p != ps.end ||
		((dfa->anchored_start || dfa->anchored_end) && strchr(pattern, '|') != NULL &&
		 ast->kind == A_ALT))
		ok = false;
	if (ok)
	{
		int			match = AddNode(dfa, N_MATCH, -1, -1, -1, &ok);

		dfa->start = Emit(dfa, ast, match, &ok);
	}
	MemoryContextSwitchTo(cxt);
	MemoryContextDelete(tmp);
	if (!ok)
	{
		pfree(dfa);
		return NULL;
	}
	dfa->maxstates = 16;
	dfa->states = palloc(dfa->maxstates * sizeof(DfaState *));
	return dfa;
}

/* ----------------------------------------------------------------------
 * Matching
 * ----------------------------------------------------------------------
 */

/* Adds node and what it reaches without consuming a char to set. */
static void
Closure(ValidateRegexDfa *dfa, int node, uint64 *set, bool *accept)
{
	int			stack[2 * DFA_MAX_NFA + 1];	/* a node is expanded once */
	int			sp = 0;

	stack[sp++] = node;
	while (sp > 0)
	{
		int			n = stack[--sp];
		NfaNode    *nd;

		if (set[n >> 6] & (UINT64CONST(1) << (n & 63)))
			continue;
		set[n >> 6] |= UINT64CONST(1) << (n & 63);
		nd = &dfa->nodes[n];
		if (nd->kind == N_MATCH)
			*accept = true;
		else if (nd->kind == N_SPLIT)
		{
			stack[sp++] = nd->out2;
			stack[sp++] = nd->out;
		}
	}
}

/* The cached state with this NFA set, added when new; -1 when full. */
static int
StateFor(ValidateRegexDfa *dfa, const uint64 *set, bool accept)
{
	DfaState   *st;
	int			i;

	for (i = 0; i < dfa->nstates; i++)
		if (memcmp(dfa->states[i]->set, set, sizeof(st->set)) == 0)
			return i;
	if (dfa->nstates == DFA_MAX_STATES)
		return -1;
	if (dfa->nstates == dfa->maxstates)
	{
		dfa->maxstates *= 2;
		dfa->states = repalloc(dfa->states, dfa->maxstates * sizeof(DfaState *));
	}
	st = MemoryContextAlloc(dfa->cxt, sizeof(DfaState));
	memcpy(st->set, set, sizeof(st->set));
	st->accept = accept;
	st->dead = dfa->anchored_start && !accept;
	for (i = 0; i < DFA_SET_WORDS; i++)
		st->dead &= set[i] == 0;
	st->stop = st->dead || (accept && !dfa->anchored_end);
	memset(st->next, 0, sizeof(st->next));
	st->self[0] = st->self[1] = 0;
	dfa->states[dfa->nstates] = st;
	return dfa->nstates++;
}

/* The state after reading c in from, cached; NULL when the cache is full. */
static DfaState *
Step(ValidateRegexDfa *dfa, DfaState *from, int c)
{
	uint64		set[DFA_SET_WORDS];
	bool		accept = false;
	int			n;
	int			to;

	memset(set, 0, sizeof(set));
	for (n = 0; n < dfa->nnodes; n++)
	{
		NfaNode    *nd = &dfa->nodes[n];

		if ((from->set[n >> 6] & (UINT64CONST(1) << (n & 63))) && nd->kind == N_CHAR &&
			(dfa->classes[nd->cls].w[c >> 6] & (UINT64CONST(1) << (c & 63))))
			Closure(dfa, nd->out, set, &accept);
	}
	if (!dfa->anchored_start)
		Closure(dfa, dfa->start, set, &accept);
	to = StateFor(dfa, set, accept);
	if (to < 0)
		return NULL;
	from->next[c] = dfa->states[to];
	if (from->next[c] == from)
		from->self[c >> 6] |= UINT64CONST(1) << (c & 63);
	return from->next[c];
}

/*
 * Whether s matches: 1 yes, 0 no, -1 not decided here (a byte outside
 * 1..127, or the state cache is full): ask pg_regexec.
 */
int
ValidateRegexDfaMatch(ValidateRegexDfa *dfa, const char *s, int len)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;
	DfaState   *st;

	if (dfa->nstates == 0)
	{
		uint64		set[DFA_SET_WORDS];
		bool		accept = false;

		memset(set, 0, sizeof(set));
		Closure(dfa, dfa->start, set, &accept);
		if (StateFor(dfa, set, accept) != 0)
			return -1;
	}
	st = dfa->states[0];
	for (; p < end && !st->stop; p++)
	{
		int			c;
		DfaState   *to;

		/*
		 * Most of a value is read in states that loop on it (the path of a
		 * URL in \S*, say): those bytes are tested against the state's own
		 * set, held in registers, without the chain of dependent next[]
		 * loads. Bytes 0 and 128..255 are never in a set.
		 */
		if ((st->self[0] | st->self[1]) != 0)
		{
			uint64		lo = st->self[0];
			uint64		hi = st->self[1];

			while (p < end && *p < 128 &&
				   (((*p < 64 ? lo : hi) >> (*p & 63)) & 1) != 0)
				p++;
			if (p == end)
				break;
		}
		c = *p;
		if ((unsigned) (c - 1) >= 127)
			return -1;			/* NUL or not ASCII */
		to = st->next[c];
		if (to == NULL && (to = Step(dfa, st, c)) == NULL)
			return -1;
		st = to;
	}
	/*
	 * An early verdict is right whatever follows: a match of a prefix is a
	 * match when the pattern is not anchored at the end, and a dead state
	 * (anchored start) stays dead.
	 */
	return st->accept ? 1 : 0;
}
