/* SPDX-License-Identifier: MIT */
/* Leveled logging to stderr, one whole line per write. */
#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "text.h"

static enum pf_log_level max_level = PF_LOG_INFO;
static const char *prog = "paraflow";

void
pf_log_set_level(enum pf_log_level level)
{
	max_level = level;
}

void
pf_log_set_prog(const char *name)
{
	prog = name;
}

const char *
pf_log_prog(void)
{
	return prog;
}

static void vlog(enum pf_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
vlog(enum pf_log_level level, const char *fmt, va_list ap)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char msg[1024], line[2048], stamp[32];
	time_t now = time(NULL);
	int n;

	pf_time_rfc3339(now, stamp);
	n = snprintf(line, sizeof(line), "%s %s[%d] %s: ", stamp, prog,
	    (int)getpid(), names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/*
	 * Messages quote peers (names, ids, their error texts): escaped, a
	 * newline cannot forge a line nor an ESC drive the reader's terminal.
	 */
	n += (int)pf_text_escape(line + n, sizeof(line) - (size_t)n - 1, msg,
	    NULL);
	/* One write per line, so lines of concurrent threads never mix. */
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void
pf_log(enum pf_log_level level, const char *fmt, ...)
{
	va_list ap;

	/* PF_LOG_NONE is a setting, not a level a line may have. */
	if (level > max_level || level < PF_LOG_ERROR)
		return;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

void
pf_log_limit_init(struct pf_log_limit *l, const char *what, unsigned burst,
    unsigned interval_s)
{
	*l = (struct pf_log_limit){ .what = what, .burst = burst,
	    .interval_s = interval_s };
	pthread_mutex_init(&l->lock, NULL);
}

void
pf_log_limit_destroy(struct pf_log_limit *l)
{
	pthread_mutex_destroy(&l->lock);
}

void
pf_log_limited(struct pf_log_limit *l, enum pf_log_level level,
    const char *fmt, ...)
{
	uint64_t now = pf_now_ms(), since = 0;
	unsigned dropped = 0;
	bool print;
	va_list ap;

	if (level > max_level || level < PF_LOG_ERROR)
		return;
	pthread_mutex_lock(&l->lock);
	if (l->window_ms == 0 ||
	    now - l->window_ms >= 1000ULL * l->interval_s) {
		dropped = l->dropped;
		since = now - l->window_ms;
		l->window_ms = now;
		l->lines = l->dropped = 0;
	}
	if ((print = l->lines < l->burst))
		l->lines++;
	else
		l->dropped++;
	pthread_mutex_unlock(&l->lock);
	if (dropped > 0)
		pf_log(level, "%u more %s in the last %llu s were not logged "
		    "one by one", dropped, l->what,
		    (unsigned long long)since / 1000);
	if (!print)
		return;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}
