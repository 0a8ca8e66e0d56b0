/*
 * tools/gen.c — camperso-gen: a deterministic generator of realistic
 * clickstream JSON lines (and user profile updates) for the tests, the demo
 * and every benchmark.
 *
 * The model: a pool of users, each with a home country, a device (user
 * agent), an IP address and a favourite app. A fixed number of sessions run
 * at once; each belongs to a user, starts from a referrer (or none), and is
 * a walk of page views with clicks, scrolls, searches, carts and the odd
 * purchase, separated by think times (a few seconds to a couple of
 * minutes). When a session ends its slot starts the next session, of a new
 * user or of the same user after a break longer than the 30-minute
 * inactivity gap that ends sessions. Events come out in event-time order
 * (a heap of sessions keyed by their next event time), except the late
 * ones that --late-rate asks for.
 *
 * Same --seed, same arguments: byte-identical output. Fast: lines are
 * formatted by hand into a large buffer (well over 500K events/s).
 *
 * Build: make (rule in the Makefile) -> tools/camperso-gen.
 */
#define _GNU_SOURCE				/* memmem */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *usage_text =
"usage: camperso-gen [options]\n"
"Writes clickstream events as JSON lines to stdout (deterministic per seed).\n"
"\n"
"  --events N          number of lines to write (default 1000)\n"
"  --seed S            random seed (default 1); same seed and options, same bytes\n"
"  --apps K            number of apps emitting events, 1..50 (default 3)\n"
"  --users U           size of the user pool (default 10000)\n"
"  --sessions C        sessions running at once (default 1000)\n"
"  --start-time T      event time of the first session: ISO 8601 UTC\n"
"                      (2024-05-01T00:00:00Z), epoch seconds, or 'now'\n"
"                      (default 2024-05-01T00:00:00Z)\n"
"  --invalid-rate R    fraction of bad lines (default 0.01): malformed JSON,\n"
"                      wrong types, missing event_id, bad uuid, future and\n"
"                      too-old timestamps, oversized values, invalid UTF-8,\n"
"                      \\u0000 in a string, a top level that is not an object\n"
"  --duplicate-rate R  fraction of lines that repeat a recent line exactly\n"
"                      (same event_id) (default 0)\n"
"  --late-rate R       fraction of events whose time is 1 to 48 hours in the\n"
"                      past, as if they arrived late (default 0)\n"
"  --users-topic       write user profile updates instead of events:\n"
"                      user_id, country, plan, email, updated_at (these make\n"
"                      SCD2 history; --late-rate makes some out of order)\n"
"  --key               prefix each line with its key (the user_id) and a TAB,\n"
"                      for kcat -K '\\t'\n"
"  --rate E            pace the output at E lines per second (default: as fast\n"
"                      as possible)\n"
"  --stats             print a summary (lines, invalid, duplicates, late) to stderr\n"
"  --help              this text\n"
"\n"
"An event: {\"event_id\":uuid,\"user_id\",\"session_id\",\"app_id\",\"event_type\"\n"
"(page_view, click, scroll, add_to_cart, purchase, signup, login, search),\n"
"\"page_url\",\"referrer\" (or null),\"user_agent\",\"ip\",\"country\",\"ts\"\n"
"(ISO 8601 UTC, milliseconds),\"props\":{...}}\n";

/* ---- random numbers: splitmix64 seeding a xoshiro256** generator ---- */

static uint64_t rng_s[4];

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t
rnd(void)
{
	uint64_t	result = rotl(rng_s[1] * 5, 7) * 9;
	uint64_t	t = rng_s[1] << 17;

	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = rotl(rng_s[3], 45);
	return result;
}

/* uniform in [0, n) */
static inline uint32_t
rnd_below(uint32_t n)
{
	return (uint32_t) (((rnd() >> 32) * (uint64_t) n) >> 32);
}

/* uniform in [0, 1) */
static inline double
rnd_unit(void)
{
	return (rnd() >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- output buffer ---- */

#define OUTBUF_SIZE (1 << 20)
static char outbuf[OUTBUF_SIZE + 65536];
static size_t outlen;

static void
out_flush(void)
{
	size_t		off = 0;

	while (off < outlen)
	{
		ssize_t		n = write(1, outbuf + off, outlen - off);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno != EPIPE)
				perror("camperso-gen: write");
			exit(errno == EPIPE ? 0 : 1);
		}
		off += n;
	}
	outlen = 0;
}

/* the line under construction lives in its own buffer (duplicates reuse it) */
static char *line;
static size_t line_len;
static size_t line_cap;

static inline void
put_n(const char *s, size_t n)
{
	if (line_len + n > line_cap)
	{
		while (line_len + n > line_cap)
			line_cap *= 2;
		line = realloc(line, line_cap);
		if (!line)
		{
			fprintf(stderr, "camperso-gen: out of memory\n");
			exit(1);
		}
	}
	memcpy(line + line_len, s, n);
	line_len += n;
}

static inline void
put_s(const char *s)
{
	put_n(s, strlen(s));
}

static inline void
put_c(char c)
{
	put_n(&c, 1);
}

static void
put_u(uint64_t v)
{
	char		tmp[24];
	int			i = sizeof(tmp);

	do
	{
		tmp[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	put_n(tmp + i, sizeof(tmp) - i);
}

static void
put_u_width(uint64_t v, int width)
{
	char		tmp[24];
	int			i = sizeof(tmp);

	while (width-- > 0 || v)
	{
		tmp[--i] = '0' + v % 10;
		v /= 10;
	}
	put_n(tmp + i, sizeof(tmp) - i);
}

/* cents as d.cc */
static void
put_money(uint64_t cents)
{
	put_u(cents / 100);
	put_c('.');
	put_u_width(cents % 100, 2);
}

static const char hexd[] = "0123456789abcdef";

static void
put_uuid(void)
{
	uint64_t	a = rnd(),
				b = rnd();
	char		u[36];
	int			i,
				j = 0;

	a = (a & ~0xF000ULL) | 0x4000ULL;	/* version 4 */
	b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;	/* variant */
	for (i = 0; i < 16; i++)
	{
		unsigned	byte = i < 8 ? (a >> (56 - 8 * i)) & 0xFF : (b >> (56 - 8 * (i - 8))) & 0xFF;

		if (i == 4 || i == 6 || i == 8 || i == 10)
			u[j++] = '-';
		u[j++] = hexd[byte >> 4];
		u[j++] = hexd[byte & 15];
	}
	put_n(u, 36);
}

/* epoch milliseconds -> 2024-05-01T12:00:00.123Z */
static void
put_ts(int64_t ms)
{
	int64_t		secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
	int			msec = (int) (ms - secs * 1000);
	int64_t		days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	int			sod = (int) (secs - days * 86400);
	/* civil from days (proleptic Gregorian) */
	int64_t		z = days + 719468;
	int64_t		era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned	doe = (unsigned) (z - era * 146097);
	unsigned	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t		y = (int64_t) yoe + era * 400;
	unsigned	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned	mp = (5 * doy + 2) / 153;
	unsigned	d = doy - (153 * mp + 2) / 5 + 1;
	unsigned	m = mp < 10 ? mp + 3 : mp - 9;

	y += (m <= 2);
	put_u_width((uint64_t) y, 4);
	put_c('-');
	put_u_width(m, 2);
	put_c('-');
	put_u_width(d, 2);
	put_c('T');
	put_u_width(sod / 3600, 2);
	put_c(':');
	put_u_width(sod / 60 % 60, 2);
	put_c(':');
	put_u_width(sod % 60, 2);
	put_c('.');
	put_u_width(msec, 3);
	put_c('Z');
}

/* ---- the world ---- */

static const char *const countries[] = {
	"US", "US", "US", "US", "DE", "DE", "GB", "GB", "FR", "FR", "IN", "IN", "BR",
	"JP", "CA", "ES", "IT", "NL", "PL", "SE", "AU", "MX", "KR", "CH", "NG"
};
#define NCOUNTRIES (sizeof(countries) / sizeof(countries[0]))

static const char *const user_agents[] = {
	/* desktop */
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	/* mobile */
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
	/* tablet */
	"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
};
#define NUAS (sizeof(user_agents) / sizeof(user_agents[0]))

static const char *const referrers[] = {
	"https://www.google.com/", "https://www.google.com/", "https://www.google.com/",
	"https://www.bing.com/", "https://duckduckgo.com/", "https://www.facebook.com/",
	"https://t.co/", "https://www.reddit.com/", "https://news.ycombinator.com/",
	"https://mail.example-newsletter.com/"
};
#define NREFERRERS (sizeof(referrers) / sizeof(referrers[0]))

static const char *const app_names[] = {
	"web-shop", "ios-app", "android-app", "web-blog", "partner-portal"
};

static const char *const sections[] = {
	"/", "/products/", "/products/", "/products/", "/category/", "/category/",
	"/search", "/cart", "/blog/", "/help/", "/account"
};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

static const char *const words[] = {
	"red shoes", "running jacket", "laptop stand", "coffee grinder", "yoga mat",
	"wireless earbuds", "desk lamp", "backpack", "water bottle", "gift card",
	"winter coat", "usb-c cable"
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static const char *const elements[] = {
	"#buy", "#add-to-cart", "nav.menu", "a.product-card", "button.filter",
	"#newsletter-signup", "a.breadcrumb", "img.hero"
};
#define NELEMENTS (sizeof(elements) / sizeof(elements[0]))

static const char *const plans[] = {"free", "pro", "enterprise"};
static const char *const login_methods[] = {"email", "google", "apple", "github"};

typedef struct User
{
	uint8_t		country;
	uint8_t		ua;
	uint8_t		app;
	uint8_t		plan;
	uint32_t	ip;
	int64_t		last_seen_ms;	/* end of the user's last session */
	uint16_t	email_version;
} User;

typedef struct Session
{
	int64_t		next_ms;		/* heap key */
	uint32_t	user;
	uint64_t	id;
	int			remaining;		/* events left */
	int			step;
	uint32_t	page;			/* current product/page number */
	uint8_t		section;
	uint32_t	prev_page;		/* the page before, the referrer of this one */
	uint8_t		prev_section;
	uint8_t		referrer;		/* 0: none, else index + 1 */
	bool		cart;
	uint8_t		app;
	uint8_t		ua;				/* the device: the app's platform decides */
} Session;

static User *users;
static uint32_t nusers = 10000;
static Session *heap;
static uint32_t nsessions = 1000;
static uint32_t napps = 3;
static uint64_t session_counter;

static void
heap_down(uint32_t i)
{
	for (;;)
	{
		uint32_t	l = 2 * i + 1,
					r = l + 1,
					m = i;
		Session		tmp;

		if (l < nsessions && heap[l].next_ms < heap[m].next_ms)
			m = l;
		if (r < nsessions && heap[r].next_ms < heap[m].next_ms)
			m = r;
		if (m == i)
			return;
		tmp = heap[i];
		heap[i] = heap[m];
		heap[m] = tmp;
		i = m;
	}
}

/* think time between two events of a session: mostly 3..60 s, a long tail */
static int64_t
think_ms(void)
{
	double		u = rnd_unit();

	if (u < 0.70)
		return 3000 + rnd_below(27000);
	if (u < 0.95)
		return 30000 + rnd_below(90000);
	return 120000 + rnd_below(600000);	/* stays under the 30-minute gap */
}

static void
session_start(Session *s, int64_t now_ms)
{
	uint32_t	u = rnd_below(nusers);
	User	   *user = &users[u];

	/* a returning user comes back after more than 30 minutes of inactivity */
	if (user->last_seen_ms && now_ms < user->last_seen_ms + 31 * 60000)
		now_ms = user->last_seen_ms + 31 * 60000 + rnd_below(3600000);
	s->user = u;
	s->id = splitmix64(&session_counter);
	s->remaining = 1 + rnd_below(4) + (rnd_unit() < 0.5 ? rnd_below(20) : 0);
	s->step = 0;
	s->page = rnd_below(5000);
	s->section = rnd_below(NSECTIONS);
	s->prev_section = s->section;
	s->prev_page = s->page;
	s->referrer = rnd_unit() < 0.4 ? 0 : 1 + rnd_below(NREFERRERS);
	s->cart = false;
	s->app = rnd_unit() < 0.8 ? user->app : rnd_below(napps);
	/* native apps run on their platform: iPhone/iPad, or Android phone/tablet */
	if (s->app == 1)
		s->ua = (uint8_t[]) {6, 9, 10}[rnd_below(3)];
	else if (s->app == 2)
		s->ua = (uint8_t[]) {7, 8, 11}[rnd_below(3)];
	else
		s->ua = user->ua;
	s->next_ms = now_ms + rnd_below(5000);
}

static const char *
app_name(unsigned app)
{
	static char names[50][16];

	if (app < 5)
		return app_names[app];
	if (!names[app][0])
		snprintf(names[app], sizeof(names[app]), "app-%u", app + 1);
	return names[app];
}

static void
put_page_url(Session *s)
{
	put_s("https://");
	put_s(s->app == 3 ? "blog.example.com" : "shop.example.com");
	put_s(sections[s->section]);
	if (sections[s->section][strlen(sections[s->section]) - 1] == '/' && s->section != 0)
		put_u(s->page);
}

static void
put_ip(uint32_t ip)
{
	put_u(ip >> 24);
	put_c('.');
	put_u((ip >> 16) & 255);
	put_c('.');
	put_u((ip >> 8) & 255);
	put_c('.');
	put_u(ip & 255);
}

static void
put_user_id(uint32_t u)
{
	put_c('u');
	put_u_width(u, 7);
}

/* Kinds of invalid lines. */
enum
{
	BAD_TRUNCATED,
	BAD_WRONG_TYPE,
	BAD_MISSING_ID,
	BAD_UUID,
	BAD_FUTURE,
	BAD_TOO_OLD,
	BAD_OVERSIZED,
	BAD_UTF8,
	BAD_NUL,
	BAD_NOT_OBJECT,
	BAD_KINDS
};

static uint64_t stat_invalid,
			stat_duplicates,
			stat_late;

/* Writes one event line for session s into line[]. */
static void
event_line(Session *s, int64_t ts_ms, int bad)
{
	User	   *user = &users[s->user];
	const char *type;
	uint32_t	r = rnd_below(100);

	/* what happens at this step of the walk */
	if (s->step == 0)
		type = r < 5 ? "signup" : r < 20 ? "login" : "page_view";
	else if (s->cart && r < 12)
		type = "purchase";
	else if (r < 45)
		type = "page_view";
	else if (r < 65)
		type = "click";
	else if (r < 80)
		type = "scroll";
	else if (r < 90)
		type = "search";
	else
		type = "add_to_cart";

	if (bad == BAD_NOT_OBJECT)
	{
		put_s("[\"");
		put_s(type);
		put_s("\",");
		put_u(ts_ms);
		put_c(']');
		return;
	}
	put_s("{");
	if (bad != BAD_MISSING_ID)
	{
		put_s("\"event_id\":");
		if (bad == BAD_UUID)
		{
			put_s("\"");
			put_u(rnd());
			put_s("-not-a-uuid\",");
		}
		else if (bad == BAD_WRONG_TYPE && r % 2)
		{
			put_u(rnd() >> 16);
			put_c(',');
		}
		else
		{
			put_c('"');
			put_uuid();
			put_s("\",");
		}
	}
	put_s("\"user_id\":\"");
	put_user_id(s->user);
	if (bad == BAD_OVERSIZED)
	{
		int			i;

		for (i = 0; i < 1024; i++)
			put_s("xxxxxxxxxx");
	}
	put_s("\",\"session_id\":\"s");
	{
		char		hex[16];
		int			i;

		for (i = 0; i < 16; i++)
			hex[i] = hexd[(s->id >> (60 - 4 * i)) & 15];
		put_n(hex, 16);
	}
	put_s("\",\"app_id\":\"");
	put_s(app_name(s->app));
	put_s("\",\"event_type\":\"");
	put_s(type);
	put_s("\",\"page_url\":\"");
	put_page_url(s);
	put_s("\",\"referrer\":");
	if (s->step == 0)
	{
		if (s->referrer)
		{
			put_c('"');
			put_s(referrers[s->referrer - 1]);
			put_c('"');
		}
		else
			put_s("null");
	}
	else
	{
		Session		prev = *s;

		prev.section = s->prev_section;
		prev.page = s->prev_page;
		put_c('"');
		put_page_url(&prev);
		put_c('"');
	}
	put_s(",\"user_agent\":\"");
	if (bad == BAD_UTF8)
		put_s("Mozilla/5.0 \xC3\x28 broken \xFF");
	else
		put_s(user_agents[s->ua]);
	put_s("\",\"ip\":\"");
	put_ip(user->ip);
	put_s("\",\"country\":\"");
	put_s(countries[user->country]);
	put_s("\",\"ts\":");
	if (bad == BAD_WRONG_TYPE && !(r % 2))
		put_u(ts_ms / 1000);
	else
	{
		put_c('"');
		put_ts(bad == BAD_FUTURE ? ts_ms + 2LL * 365 * 86400000 :
			   bad == BAD_TOO_OLD ? ts_ms - 5LL * 365 * 86400000 : ts_ms);
		put_c('"');
	}
	put_s(",\"props\":{");
	if (strcmp(type, "page_view") == 0)
	{
		put_s("\"title\":\"");
		put_s(s->section == 1 || s->section == 2 || s->section == 3 ? "Product " : "Page ");
		put_u(s->page);
		put_s("\",\"load_ms\":");
		put_u(80 + rnd_below(1500));
	}
	else if (strcmp(type, "click") == 0)
	{
		put_s("\"element\":\"");
		put_s(elements[rnd_below(NELEMENTS)]);
		put_s("\",\"x\":");
		put_u(rnd_below(1920));
		put_s(",\"y\":");
		put_u(rnd_below(1080));
	}
	else if (strcmp(type, "scroll") == 0)
	{
		put_s("\"depth\":");
		put_u(25 * (1 + rnd_below(4)));
	}
	else if (strcmp(type, "search") == 0)
	{
		put_s("\"query\":\"");
		put_s(words[rnd_below(NWORDS)]);
		put_s("\",\"results\":");
		put_u(rnd_below(200));
	}
	else if (strcmp(type, "add_to_cart") == 0)
	{
		put_s("\"product_id\":\"p");
		put_u(s->page);
		put_s("\",\"price\":");
		put_money(199 + rnd_below(30000));
		put_s(",\"qty\":");
		put_u(1 + rnd_below(3));
	}
	else if (strcmp(type, "purchase") == 0)
	{
		put_s("\"order_id\":\"o");
		put_u(rnd() >> 20);
		put_s("\",\"revenue\":");
		put_money(999 + rnd_below(50000));
		put_s(",\"currency\":\"");
		put_s(user->country == 4 || user->country == 5 || user->country == 8 ||
			  user->country == 9 ? "EUR" : "USD");
		put_s("\",\"items\":");
		put_u(1 + rnd_below(5));
	}
	else
	{
		put_s("\"method\":\"");
		put_s(login_methods[rnd_below(4)]);
		put_c('"');
	}
	if (bad == BAD_NUL)
		put_s(",\"note\":\"a\\u0000b\"");
	put_s("}}");
	if (bad == BAD_TRUNCATED)
		line_len = line_len / 2;	/* cut mid-line: malformed JSON */

	/* the walk goes on */
	if (strcmp(type, "add_to_cart") == 0)
		s->cart = true;
	if (strcmp(type, "purchase") == 0)
		s->cart = false;
	if (strcmp(type, "page_view") == 0 || strcmp(type, "search") == 0)
	{
		s->prev_section = s->section;
		s->prev_page = s->page;
		s->section = rnd_below(NSECTIONS);
		s->page = rnd_below(5000);
	}
}

/* Writes one user profile update into line[]. */
static void
user_line(int64_t ts_ms, int bad)
{
	uint32_t	u = rnd_below(nusers);
	User	   *user = &users[u];
	uint32_t	r = rnd_below(100);

	/* an update changes the plan (mostly), the country or the email */
	if (r < 60)
		user->plan = (user->plan + 1 + rnd_below(2)) % 3;
	else if (r < 80)
		user->country = rnd_below(NCOUNTRIES);
	else
		user->email_version++;

	if (bad == BAD_NOT_OBJECT)
	{
		put_s("\"not an object\"");
		return;
	}
	put_c('{');
	if (bad != BAD_MISSING_ID)
	{
		put_s("\"user_id\":\"");
		put_user_id(u);
		put_s("\",");
	}
	put_s("\"country\":\"");
	put_s(countries[user->country]);
	put_s("\",\"plan\":");
	if (bad == BAD_WRONG_TYPE)
		put_u(user->plan);
	else
	{
		put_c('"');
		put_s(plans[user->plan]);
		put_c('"');
	}
	put_s(",\"email\":\"");
	put_user_id(u);
	if (user->email_version)
	{
		put_c('.');
		put_u(user->email_version);
	}
	if (bad == BAD_UTF8)
		put_s("\xC3\x28");
	if (bad == BAD_OVERSIZED)
	{
		int			i;

		for (i = 0; i < 1024; i++)
			put_s("xxxxxxxxxx");
	}
	put_s("@example.com\",\"updated_at\":");
	if (bad == BAD_UUID)		/* no uuid here: an unparseable time instead */
		put_s("\"yesterday-ish\"");
	else
	{
		put_c('"');
		put_ts(bad == BAD_FUTURE ? ts_ms + 2LL * 365 * 86400000 :
			   bad == BAD_TOO_OLD ? ts_ms - 5LL * 365 * 86400000 : ts_ms);
		put_c('"');
	}
	if (bad == BAD_NUL)
		put_s(",\"note\":\"\\u0000\"");
	put_c('}');
	if (bad == BAD_TRUNCATED)
		line_len = line_len / 2;
}

static bool
parse_time(const char *s, int64_t *ms)
{
	int			y,
				mo,
				d,
				h = 0,
				mi = 0,
				sec = 0;
	char	   *end;
	long long	v;

	if (strcmp(s, "now") == 0)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		*ms = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		return true;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end == '\0' && errno == 0)
	{
		*ms = (int64_t) v * 1000;
		return true;
	}
	if (sscanf(s, "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &sec) < 3 &&
		sscanf(s, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &sec) < 3)
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > 31)
		return false;
	{
		/* days from civil */
		int			yy = y - (mo <= 2);
		int			era = (yy >= 0 ? yy : yy - 399) / 400;
		unsigned	yoe = (unsigned) (yy - era * 400);
		unsigned	doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		unsigned	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
		int64_t		days = (int64_t) era * 146097 + doe - 719468;

		*ms = ((days * 86400) + h * 3600 + mi * 60 + sec) * 1000;
	}
	return true;
}

static double
arg_rate(const char *name, const char *v)
{
	char	   *end;
	double		r = strtod(v, &end);

	if (*end || r < 0 || r > 1)
	{
		fprintf(stderr, "camperso-gen: %s must be a number between 0 and 1\n", name);
		exit(2);
	}
	return r;
}

static uint64_t
arg_count(const char *name, const char *v, uint64_t min, uint64_t max)
{
	char	   *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (*end || errno || n < min || n > max || v[0] == '-')
	{
		fprintf(stderr, "camperso-gen: %s must be an integer between %" PRIu64 " and %" PRIu64 "\n",
				name, min, max);
		exit(2);
	}
	return n;
}

int
main(int argc, char **argv)
{
	uint64_t	nevents = 1000;
	uint64_t	seed = 1;
	double		invalid_rate = 0.01;
	double		duplicate_rate = 0;
	double		late_rate = 0;
	double		rate = 0;
	bool		users_topic = false;
	bool		with_key = false;
	bool		stats = false;
	int64_t		start_ms;
	uint64_t	i;
	struct timespec t0;

	/* recent lines, for duplicates */
#define RECENT 64
	char	   *recent[RECENT] = {0};
	size_t		recent_len[RECENT] = {0};
	size_t		recent_cap[RECENT] = {0};
	uint64_t	nrecent = 0;

	parse_time("2024-05-01T00:00:00Z", &start_ms);
	for (i = 1; i < (uint64_t) argc; i++)
	{
		const char *a = argv[i];
		const char *v = (i + 1 < (uint64_t) argc) ? argv[i + 1] : NULL;

#define NEEDV() do { if (!v) { fprintf(stderr, "camperso-gen: %s needs a value\n", a); return 2; } i++; } while (0)
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
		{
			fputs(usage_text, stdout);
			return 0;
		}
		else if (strcmp(a, "--events") == 0)
		{
			NEEDV();
			nevents = arg_count(a, v, 0, UINT64_C(1) << 40);
		}
		else if (strcmp(a, "--seed") == 0)
		{
			NEEDV();
			seed = arg_count(a, v, 0, UINT64_MAX);
		}
		else if (strcmp(a, "--apps") == 0)
		{
			NEEDV();
			napps = (uint32_t) arg_count(a, v, 1, 50);
		}
		else if (strcmp(a, "--users") == 0)
		{
			NEEDV();
			nusers = (uint32_t) arg_count(a, v, 1, 10000000);
		}
		else if (strcmp(a, "--sessions") == 0)
		{
			NEEDV();
			nsessions = (uint32_t) arg_count(a, v, 1, 1000000);
		}
		else if (strcmp(a, "--start-time") == 0)
		{
			NEEDV();
			if (!parse_time(v, &start_ms))
			{
				fprintf(stderr, "camperso-gen: --start-time: cannot read \"%s\"\n", v);
				return 2;
			}
		}
		else if (strcmp(a, "--invalid-rate") == 0)
		{
			NEEDV();
			invalid_rate = arg_rate(a, v);
		}
		else if (strcmp(a, "--duplicate-rate") == 0)
		{
			NEEDV();
			duplicate_rate = arg_rate(a, v);
		}
		else if (strcmp(a, "--late-rate") == 0)
		{
			NEEDV();
			late_rate = arg_rate(a, v);
		}
		else if (strcmp(a, "--rate") == 0)
		{
			char	   *end;

			NEEDV();
			rate = strtod(v, &end);
			if (*end || rate <= 0)
			{
				fprintf(stderr, "camperso-gen: --rate must be a positive number of lines per second\n");
				return 2;
			}
		}
		else if (strcmp(a, "--users-topic") == 0)
			users_topic = true;
		else if (strcmp(a, "--key") == 0)
			with_key = true;
		else if (strcmp(a, "--stats") == 0)
			stats = true;
		else
		{
			fprintf(stderr, "camperso-gen: unknown option \"%s\"\n\n%s", a, usage_text);
			return 2;
		}
	}

	{
		uint64_t	x = seed;

		rng_s[0] = splitmix64(&x);
		rng_s[1] = splitmix64(&x);
		rng_s[2] = splitmix64(&x);
		rng_s[3] = splitmix64(&x);
		session_counter = seed * 0x632BE59BD9B4E019ULL;
	}
	line_cap = 4096;
	line = malloc(line_cap);
	users = calloc(nusers, sizeof(User));
	heap = calloc(nsessions, sizeof(Session));
	if (!line || !users || !heap)
	{
		fprintf(stderr, "camperso-gen: out of memory\n");
		return 1;
	}
	for (i = 0; i < nusers; i++)
	{
		users[i].country = rnd_below(NCOUNTRIES);
		users[i].ua = rnd_below(NUAS);
		users[i].app = rnd_below(napps);
		users[i].plan = rnd_unit() < 0.7 ? 0 : rnd_unit() < 0.8 ? 1 : 2;
		/* a public-looking IPv4 address: first octet 11..223, not 127 */
		users[i].ip = ((11 + rnd_below(213)) << 24) | (rnd() & 0xFFFFFF);
		if ((users[i].ip >> 24) == 127)
			users[i].ip ^= 1u << 24;
	}
	for (i = 0; i < nsessions; i++)
	{
		session_start(&heap[i], start_ms + rnd_below(600000));
	}
	for (i = nsessions; i-- > 0;)
		heap_down((uint32_t) i);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	{
		int64_t		user_clock = start_ms;

		for (i = 0; i < nevents; i++)
		{
			int			bad = -1;
			double		u = rnd_unit();
			bool		dup = false;

			line_len = 0;
			if (u < invalid_rate)
			{
				bad = (int) rnd_below(BAD_KINDS);
				stat_invalid++;
			}
			else if (u < invalid_rate + duplicate_rate && nrecent > 0)
				dup = true;

			if (dup)
			{
				uint64_t	k = (nrecent - 1 - rnd_below(nrecent < RECENT ? nrecent : RECENT)) % RECENT;

				put_n(recent[k], recent_len[k]);
				stat_duplicates++;
			}
			else if (users_topic)
			{
				int64_t		ts;

				user_clock += 1000 + rnd_below(120000);
				ts = user_clock;
				if (bad < 0 && late_rate > 0 && rnd_unit() < late_rate)
				{
					ts -= 3600000LL * (1 + rnd_below(48));
					stat_late++;
				}
				user_line(ts, bad);
			}
			else
			{
				Session    *s = &heap[0];
				int64_t		ts = s->next_ms;

				if (bad < 0 && late_rate > 0 && rnd_unit() < late_rate)
				{
					ts -= 3600000LL * (1 + rnd_below(48));
					stat_late++;
				}
				event_line(s, ts, bad);
				s->step++;
				if (--s->remaining <= 0)
				{
					users[s->user].last_seen_ms = s->next_ms;
					session_start(s, s->next_ms + think_ms());
				}
				else
					s->next_ms += think_ms();
				heap_down(0);
			}

			/* remember good lines for duplicates */
			if (bad < 0 && !dup && duplicate_rate > 0)
			{
				uint64_t	k = nrecent % RECENT;

				if (recent_cap[k] < line_len)
				{
					recent_cap[k] = line_len * 2;
					recent[k] = realloc(recent[k], recent_cap[k]);
					if (recent[k] == NULL)
					{
						fprintf(stderr, "camperso-gen: out of memory\n");
						return 1;
					}
				}
				memcpy(recent[k], line, line_len);
				recent_len[k] = line_len;
				nrecent++;
			}

			/* key TAB line NEWLINE, into the output buffer */
			if (with_key)
			{
				/* the key is the user_id, read back from the line */
				const char *p = memmem(line, line_len, "\"user_id\":\"", 11);
				size_t		klen = 0;

				if (p)
				{
					p += 11;
					while (p + klen < line + line_len && p[klen] != '"' && klen < 64)
						klen++;
				}
				if (outlen + klen + 1 > OUTBUF_SIZE)
					out_flush();
				if (p)
					memcpy(outbuf + outlen, p, klen);
				outlen += klen;
				outbuf[outlen++] = '\t';
			}
			if (outlen + line_len + 1 > OUTBUF_SIZE)
				out_flush();
			if (line_len + 1 > OUTBUF_SIZE)
			{
				out_flush();
				fwrite(line, 1, line_len, stdout);
				fflush(stdout);
			}
			else
			{
				memcpy(outbuf + outlen, line, line_len);
				outlen += line_len;
			}
			outbuf[outlen++] = '\n';

			if (rate > 0 && (i + 1) % 16 == 0)
			{
				struct timespec now;
				double		due,
							elapsed;

				clock_gettime(CLOCK_MONOTONIC, &now);
				elapsed = (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
				due = (i + 1) / rate;
				if (due > elapsed)
				{
					struct timespec nap;
					double		d = due - elapsed;

					out_flush();
					nap.tv_sec = (time_t) d;
					nap.tv_nsec = (long) ((d - nap.tv_sec) * 1e9);
					while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
						;
				}
			}
		}
	}
	out_flush();
	if (stats)
		fprintf(stderr, "camperso-gen: %" PRIu64 " lines, %" PRIu64 " invalid, %" PRIu64 " duplicates, %" PRIu64 " late\n",
				nevents, stat_invalid, stat_duplicates, stat_late);
	for (i = 0; i < RECENT; i++)
		free(recent[i]);
	return 0;
}
