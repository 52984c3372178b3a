/* SPDX-License-Identifier: MIT */
/* Leveled logging to stderr; safe to call from any thread. */
#ifndef PF_LOG_H
#define PF_LOG_H

#include <pthread.h>
#include <stdint.h>

enum pf_log_level {
	PF_LOG_NONE = -1,	/* nothing: the fuzz targets, whose input
				   is malformed by design */
	PF_LOG_ERROR,
	PF_LOG_WARN,
	PF_LOG_INFO,
	PF_LOG_DEBUG
};

/* Sets the most verbose level printed (default PF_LOG_INFO). */
void pf_log_set_level(enum pf_log_level level);

/* Sets the program name that prefixes every line. */
void pf_log_set_prog(const char *prog);

/* The program name set with pf_log_set_prog (borrowed). */
const char *pf_log_prog(void);

void pf_log(enum pf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Lines of one kind that a peer can cause at will (a failed TLS handshake,
 * a refused proof): at most burst of them every interval_s seconds; the
 * others are counted, and the next line after the interval says how many
 * were not logged.
 */
struct pf_log_limit {
	pthread_mutex_t	 lock;
	const char	*what;		/* "refused handshakes" */
	unsigned	 burst;
	unsigned	 interval_s;
	uint64_t	 window_ms;	/* start of the interval; 0: none */
	unsigned	 lines;		/* logged in it */
	unsigned	 dropped;	/* not logged in it */
};

void pf_log_limit_init(struct pf_log_limit *l, const char *what,
    unsigned burst, unsigned interval_s);
void pf_log_limit_destroy(struct pf_log_limit *l);

/* pf_log, within the limit l. */
void pf_log_limited(struct pf_log_limit *l, enum pf_log_level level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...)	pf_log(PF_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)	pf_log(PF_LOG_WARN, __VA_ARGS__)
#define log_info(...)	pf_log(PF_LOG_INFO, __VA_ARGS__)
#define log_debug(...)	pf_log(PF_LOG_DEBUG, __VA_ARGS__)

#endif
