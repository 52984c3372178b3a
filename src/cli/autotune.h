/* SPDX-License-Identifier: MIT */
/*
 * The stream-count controller of "paraflow upload --threads auto": a pure
 * function of the goodput samples it is fed (no clock, no threads), so
 * that tests can drive it with made-up links. docs/performance.md says
 * how it works.
 */
#ifndef PF_AUTOTUNE_H
#define PF_AUTOTUNE_H

#include <stdbool.h>
#include <stdint.h>

#define AUTOTUNE_START	4	/* streams at first: the old fixed default */
/* Streams when the server does not tell its limits (an older one). */
#define AUTOTUNE_UNTOLD_CAP	8

/* Why the level changed. */
enum autotune_why {
	AUTOTUNE_GROW,		/* more streams helped: more again */
	AUTOTUNE_BACK,		/* the last step did not help: undone */
	AUTOTUNE_PROBE_UP,	/* after a hold: would more help now? */
	AUTOTUNE_PROBE_DOWN,	/* after a hold: would fewer do as well? */
	AUTOTUNE_FEWER,		/* fewer did as well: kept */
	AUTOTUNE_CAP		/* the server's limit, or it said busy */
};

/*
 * What the upload measured so far; every field counts from its start.
 * delivered is the goodput's measure: the bytes the server's TCP has
 * acknowledged on every data connection (TCP_INFO), which grow smoothly,
 * where ACK frames come in bursts when the streams finish their chunks
 * together; acks, the chunks acknowledged, set how long an interval is.
 */
struct autotune_sample {
	uint64_t	 now_ms;
	uint64_t	 delivered;	/* bytes */
	uint64_t	 acks;		/* chunks */
	uint32_t	 left;		/* chunks not acknowledged yet */
	unsigned	 draining;	/* retired streams still sending */
	unsigned	 joining;	/* wanted streams not sending yet */
};

/* One change of level, for the log and the JSON result. */
struct autotune_event {
	uint64_t		 at_ms;		/* the sample's now_ms */
	unsigned		 from, to;
	double			 rate;	/* bytes/s measured at from, or 0 */
	enum autotune_why	 why;
};

enum autotune_phase {
	AUTOTUNE_GROWING,	/* multiplying while each step gains */
	AUTOTUNE_HOLDING,	/* at the best level found */
	AUTOTUNE_PROBING,	/* one step away from it, for one interval */
	AUTOTUNE_VERIFYING	/* back at base: was a small gain real? */
};

/* The controller's state; fields are its own, read them through calls. */
struct autotune {
	unsigned		 max;		/* cap on the level */
	unsigned		 level;		/* streams wanted now */
	unsigned		 base;		/* where a probe returns */
	double			 base_rate;	/* goodput at base, or 0 */
	enum autotune_phase	 phase;
	bool			 probe_up;	/* the next probe's direction */
	unsigned		 held;		/* intervals held */
	unsigned		 hold_len;	/* intervals to hold */
	bool			 settling;	/* the interval is discarded */
	bool			 marked;	/* t0, b0, n0 are set */
	uint64_t		 t0, b0, n0;	/* the interval's start */
	uint64_t		 changed_ms;	/* the last change's now_ms */
	unsigned		 factor;	/* the next growth step */
	unsigned		 cand;		/* verifying: the level tried */
	double			 cand_rate;	/* and its goodput */
	unsigned		 peak;		/* highest level so far */
	double			 best;		/* the tried level's best */
	double			 low;		/* and its worst */
	unsigned		 seen;		/* its intervals so far */
	double			 last;		/* holding: the last interval */
};

/* Starts at min(AUTOTUNE_START, max) streams; max >= 1. */
void autotune_init(struct autotune *a, unsigned max);

/*
 * Feeds one sample (call every 100 ms or so). Returns true if there is
 * something to report, in *ev: a new level (autotune_level()), or
 * AUTOTUNE_FEWER, a probe's lower level kept.
 */
bool autotune_step(struct autotune *a, const struct autotune_sample *s,
    struct autotune_event *ev);

/*
 * Lowers the cap to max (>= 1), e.g. after a busy answer. Returns true if
 * the level went down with it, with *ev (at_ms now_ms) saying so.
 */
bool autotune_cap(struct autotune *a, unsigned max, uint64_t now_ms,
    struct autotune_event *ev);

/* The streams wanted now. */
unsigned autotune_level(const struct autotune *a);

/* The level it settled on: the current one, or where a probe returns. */
unsigned autotune_settled(const struct autotune *a);

/* The highest level so far. */
unsigned autotune_peak(const struct autotune *a);

/*
 * The data connections a server's limits leave this upload: told says
 * whether the server sent them (else AUTOTUNE_UNTOLD_CAP); user_conns a
 * user may hold, user_used of them held (the control connection and mine
 * of our own data connections among them), conns the whole server may
 * hold. At least 1.
 */
unsigned autotune_room(bool told, unsigned user_conns, unsigned user_used,
    unsigned conns, unsigned mine);

/* "grow", "back", "probe-up", ... for logs and JSON. */
const char *autotune_why_name(enum autotune_why why);

#endif
