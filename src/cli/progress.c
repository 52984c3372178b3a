/* SPDX-License-Identifier: MIT */
/* Progress bar thread: one redraw of one line every 200 ms. */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "progress.h"
#include "text.h"

#define BAR_WIDTH	24

struct progress {
	char			 label[48];
	uint64_t		 total;
	uint64_t		 base;		/* done when we started */
	const _Atomic uint64_t	*done;
	struct progress_items	 items;		/* .done NULL: none */
	struct timespec		 start;
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 wake;
	bool			 stop;
};

void
progress_format_bytes(double n, char *out)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (n >= 1024 && u < 4) {
		n /= 1024;
		u++;
	}
	snprintf(out, 16, u == 0 ? "%.0f %s" : "%.1f %s", n, units[u]);
}

static double
elapsed(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void
draw(struct progress *p, bool last)
{
	uint64_t done = atomic_load(p->done);
	/* Bytes held from an earlier run count as done, not as speed. */
	uint64_t moved = done > p->base ? done - p->base : 0;
	double secs = elapsed(&p->start), rate = secs > 0 ? moved / secs : 0;
	double frac = p->total ? (double)done / (double)p->total : 1;
	char bar[BAR_WIDTH + 1], got[16], all[16], speed[16], eta[16];
	char items[48] = "";
	int fill = (int)(frac * BAR_WIDTH);

	if (frac > 1)
		frac = 1;
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
	bar[BAR_WIDTH] = '\0';
	progress_format_bytes((double)done, got);
	progress_format_bytes((double)p->total, all);
	progress_format_bytes(rate, speed);
	if (rate > 0 && done < p->total) {
		unsigned left = (unsigned)((double)(p->total - done) / rate);

		snprintf(eta, sizeof(eta), "%u:%02u", left / 60, left % 60);
	} else
		snprintf(eta, sizeof(eta), "--:--");
	if (p->items.done != NULL)
		snprintf(items, sizeof(items), " %u/%u %s",
		    p->items.done(p->items.arg), p->items.total, p->items.what);
	fprintf(stderr, "\r\033[K%s [%s] %3.0f%%%s %s / %s %s/s ETA %s%s",
	    p->label, bar, frac * 100, items, got, all, speed, eta,
	    last ? "\n" : "");
	fflush(stderr);
}

static void *
progress_main(void *arg)
{
	struct progress *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		draw(p, false);
		pf_cond_wait_ms(&p->wake, &p->lock, 200);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct progress *
progress_start(const char *label, uint64_t total, const _Atomic uint64_t *done)
{
	return progress_start_items(label, total, done, NULL);
}

struct progress *
progress_start_items(const char *label, uint64_t total,
    const _Atomic uint64_t *done, const struct progress_items *items)
{
	struct progress *p;

	if (!isatty(STDERR_FILENO))
		return NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	/* The name as the server stored it: no control may reach the tty. */
	pf_text_escape(p->label, sizeof(p->label), label, NULL);
	p->total = total;
	p->done = done;
	if (items != NULL)
		p->items = *items;
	p->base = atomic_load(done);
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	pthread_mutex_init(&p->lock, NULL);
	pf_cond_init_monotonic(&p->wake);
	if (pthread_create(&p->thread, NULL, progress_main, p) != 0) {
		free(p);
		return NULL;
	}
	return p;
}

void
progress_stop(struct progress *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	draw(p, true);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
