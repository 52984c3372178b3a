/* SPDX-License-Identifier: MIT */
/* Leveled logging to stderr, one whole line per write. */
#include "config.h"

#include <stdarg.h>
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
