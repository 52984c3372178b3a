/* SPDX-License-Identifier: MIT */
/*
 * The stream-count controller of --threads auto. It measures goodput
 * (bytes the server acknowledged per second) over short intervals,
 * multiplies the streams while each step gains (by 4 while the goodput
 * grows about as much as the streams, by 2 while it grows plainly), goes
 * back when a step does not gain GAIN, measures the level before again
 * when a step gains only a little (A/B/A: the machine may have been
 * slower at first) and keeps the better, then holds, probing one step up
 * or down now and then. Oscillation is kept down by discarding the
 * interval right after a change (until the new streams send and retiring
 * ones are through), by judging a level by the best of JUDGE intervals
 * unless the step is plain (other load on the machine or the link slows
 * a transfer now and then, it never speeds it up), by asymmetric
 * thresholds (more streams must earn GAIN, fewer may cost FEWER_LOSS), by
 * doubling the hold after each failed probe, and by freezing near the
 * end of the file.
 */
#include "config.h"

#include <limits.h>

#include "autotune.h"

#define SETTLE_MS	100	/* once the new streams send: a tick */
#define MIN_INTERVAL_MS	200	/* a few RTTs even on a slow link */
#define FULL_MS		1000	/* an interval judging a small step */
#define MAX_INTERVAL_MS	8000	/* a slow link ends intervals early */
#define MIN_ACKS	4	/* an interval: a chunk-time or so */
#define MAX_ACKS	32
#define JUDGE		2	/* intervals a level is tried for */
#define EARLY_ACKS	2	/* enough to see a plain step */
#define EARLY_GAIN	0.50	/* a plain gain: judged after one */
#define EARLY_LOSS	0.20	/* a plain loss: likewise */
#define GAIN		0.10	/* what one more step must earn */
#define SCALING		0.50	/* of the ideal gain: grow on */
#define LINEAR		0.75	/* of the ideal gain: grow faster */
#define FAST		4	/* the faster growth step */
#define FEWER_LOSS	0.05	/* what one step less may cost */
#define CHANGE		0.30	/* a held level's goodput moved: probe */
#define HOLD_FIRST	8	/* intervals held before the first probe */
#define HOLD_MAX	64

void
autotune_init(struct autotune *a, unsigned max)
{
	*a = (struct autotune){ .max = max > 0 ? max : 1 };
	a->level = a->max < AUTOTUNE_START ? a->max : AUTOTUNE_START;
	a->base = a->peak = a->level;
	a->phase = AUTOTUNE_GROWING;
	a->hold_len = HOLD_FIRST;
	a->factor = 2;
	a->settling = true;
}

static void
mark(struct autotune *a, const struct autotune_sample *s)
{
	a->t0 = s->now_ms;
	a->b0 = s->delivered;
	a->n0 = s->acks;
	a->marked = true;
}

/* Moves to level to; the next interval is discarded. */
static bool
change(struct autotune *a, unsigned to, enum autotune_why why, double rate,
    uint64_t now_ms, struct autotune_event *ev)
{
	*ev = (struct autotune_event){ now_ms, a->level, to, rate, why };
	a->level = to;
	a->changed_ms = now_ms;
	if (to > a->peak)
		a->peak = to;
	a->settling = true;
	a->marked = false;
	a->best = a->low = 0;
	a->seen = 0;
	return true;
}

/* The next level up: at most max, and two chunks left per stream. */
static unsigned
grown(const struct autotune *a, uint32_t left)
{
	unsigned to = a->level * a->factor < a->max ? a->level * a->factor :
	    a->max;

	return to <= left / 2 ? to : left / 2;
}

/* True if rate at a->level is share of the ideal gain over base_rate. */
static bool
scales(const struct autotune *a, double rate, double share)
{
	double ideal = (double)a->level / (double)a->base - 1;

	return rate >= a->base_rate * (1 + share * ideal);
}

/*
 * True if rate at a->level is a clear gain over base_rate: EARLY_GAIN,
 * or SCALING of the ideal gain where that is less (a probe's +50 %).
 */
static bool
clear_gain(const struct autotune *a, double rate)
{
	double ideal = (double)a->level / (double)a->base - 1;
	double need = SCALING * ideal < EARLY_GAIN ? SCALING * ideal :
	    EARLY_GAIN;

	return rate >= a->base_rate * (1 + need);
}

/* Holds at base from the next interval on, measuring it afresh. */
static void
hold(struct autotune *a, unsigned hold_len, bool probe_up)
{
	a->phase = AUTOTUNE_HOLDING;
	a->held = 0;
	a->last = 0;
	a->hold_len = hold_len < HOLD_MAX ? hold_len : HOLD_MAX;
	a->probe_up = probe_up;
}

/*
 * True if best, the best goodput seen at the level being tried, settles
 * it against base_rate early: a gain or a loss so large that noise
 * cannot explain it.
 */
static bool
plain(const struct autotune *a, double best)
{
	if (a->base_rate == 0 || a->phase == AUTOTUNE_HOLDING)
		return false;
	if (a->level > a->base)
		return clear_gain(a, best);
	return best <= a->base_rate * (1 - EARLY_LOSS);
}

/*
 * Growing: a->best is what the new level did. A step that did not gain
 * GAIN is undone; one whose worse interval did not gain clearly is
 * checked against base measured again (VERIFYING); otherwise it grows
 * on, by FAST if the gain was near the ideal (every flow capped).
 */
static bool
on_growing(struct autotune *a, const struct autotune_sample *s,
    struct autotune_event *ev)
{
	double rate = a->best;
	uint64_t now = s->now_ms;

	if (a->base_rate > 0) {
		if (rate < a->base_rate * (1 + GAIN)) {
			hold(a, HOLD_FIRST, false);
			return change(a, a->base, AUTOTUNE_BACK, rate, now,
			    ev);
		}
		a->factor = scales(a, a->low, LINEAR) ? FAST : 2;
		if (!clear_gain(a, a->low)) {
			/*
			 * No clear gain in the worse interval: base may have
			 * been measured while the transfer was still starting
			 * (slow start, logins), so measure it again.
			 */
			a->cand = a->level;
			a->cand_rate = a->low;
			a->phase = AUTOTUNE_VERIFYING;
			return change(a, a->base, AUTOTUNE_BACK, rate, now,
			    ev);
		}
	}
	a->base = a->level;
	a->base_rate = rate;
	if (grown(a, s->left) > a->level)
		return change(a, grown(a, s->left), AUTOTUNE_GROW, rate, now,
		    ev);
	/* At the most it may use: hold, probing down first. */
	hold(a, HOLD_FIRST, false);
	return false;
}

/* One step up or down from the held level, as the turn says. */
static bool
probe(struct autotune *a, uint64_t now, struct autotune_event *ev)
{
	unsigned to;

	a->held = 0;
	if ((a->probe_up || a->level == 1) && a->level < a->max) {
		to = a->level + (a->level / 2 > 1 ? a->level / 2 : 1);
		a->phase = AUTOTUNE_PROBING;
		return change(a, to < a->max ? to : a->max, AUTOTUNE_PROBE_UP,
		    a->base_rate, now, ev);
	}
	if (a->level > 1) {
		to = a->level - (a->level / 4 > 1 ? a->level / 4 : 1);
		a->phase = AUTOTUNE_PROBING;
		return change(a, to, AUTOTUNE_PROBE_DOWN, a->base_rate, now,
		    ev);
	}
	return false;
}

/*
 * Holding: the reference is the better of the last two intervals (a
 * transfer is slowed by other load now and then, never sped up); two
 * intervals in a row 30 % off it mean the link changed.
 */
static bool
on_holding(struct autotune *a, double rate, uint64_t now,
    struct autotune_event *ev)
{
	double prev = a->last, hi = rate > prev ? rate : prev;
	double lo = rate < prev ? rate : prev;

	a->last = rate;
	if (a->held++ == 0)
		a->base_rate = rate;	/* a fresh reference at this level */
	else if (hi < a->base_rate * (1 - CHANGE) ||
	    lo > a->base_rate * (1 + CHANGE)) {
		/* The link changed under us: look around now. */
		a->base_rate = hi;
		a->held = a->hold_len = HOLD_FIRST;
		a->probe_up = true;
	} else
		a->base_rate = hi;
	if (a->held < a->hold_len)
		return false;
	return probe(a, now, ev);
}

/* Probing: a->best is what the level one step away did. */
static bool
on_probing(struct autotune *a, const struct autotune_sample *s,
    struct autotune_event *ev)
{
	double rate = a->best;
	uint64_t now = s->now_ms;

	if (a->level > a->base) {
		if (rate >= a->base_rate * (1 + GAIN)) {
			/* More helped again: grow from here. */
			a->phase = AUTOTUNE_GROWING;
			return on_growing(a, s, ev);
		}
		hold(a, a->hold_len * 2, false);
		return change(a, a->base, AUTOTUNE_BACK, rate, now, ev);
	}
	if (rate >= a->base_rate * (1 - FEWER_LOSS)) {
		/* As good with fewer: stay, and see if fewer still will do. */
		*ev = (struct autotune_event){ now, a->base, a->level, rate,
		    AUTOTUNE_FEWER };
		a->base = a->level;
		hold(a, HOLD_FIRST, false);
		a->base_rate = a->last = rate;
		a->held = 1;
		return true;
	}
	hold(a, a->hold_len * 2, true);
	return change(a, a->base, AUTOTUNE_BACK, rate, now, ev);
}

/*
 * Verifying: a->best is what base did again. The level tried is kept if
 * it still beats that by GAIN; either way the level holds, and the next
 * probe goes up if base stayed.
 */
static bool
on_verifying(struct autotune *a, const struct autotune_sample *s,
    struct autotune_event *ev)
{
	if (a->cand_rate >= a->best * (1 + GAIN) && a->cand <= a->max &&
	    a->cand <= s->left / 2) {
		a->base = a->cand;
		a->base_rate = a->cand_rate;
		hold(a, HOLD_FIRST, false);
		return change(a, a->cand, AUTOTUNE_GROW, a->best, s->now_ms,
		    ev);
	}
	a->base_rate = a->best;
	hold(a, HOLD_FIRST, true);
	return false;
}

/*
 * True if one interval settles a step up: it gained nearly the ideal
 * (LINEAR), which other load cannot fake (it only ever slows a transfer
 * down). Each interval saved is 200 ms more at the right level on a link
 * where every flow is capped. The first look at the starting level keeps
 * its two: a reading taken in a dip would make the first step look
 * better than it is.
 */
static bool
judged_early(const struct autotune *a)
{
	return a->phase == AUTOTUNE_GROWING && a->base_rate > 0 &&
	    a->level > a->base && scales(a, a->low, LINEAR);
}

/* Ends the interval if it is long enough; *rate is its goodput. */
static bool
interval_done(struct autotune *a, const struct autotune_sample *s,
    double *rate)
{
	uint64_t n = s->acks - a->n0, dt = s->now_ms - a->t0;
	/*
	 * Judging a step: about one chunk per stream, so every stream has a
	 * chunk through, whether their ACKs come spread or together.
	 * Settling only needs the new streams sending (goodput counts TCP's
	 * bytes, not chunks) and the retired ones gone: until their chunks
	 * in flight are through they still add to the goodput.
	 */
	uint64_t need = a->level, min_ms = FULL_MS;

	if (s->now_ms < a->t0)
		dt = 0;
	/* A server may keep a stream waiting for room: not for ever. */
	if (a->settling && (s->draining > 0 || (s->joining > 0 &&
	    s->now_ms < a->changed_ms + MAX_INTERVAL_MS))) {
		mark(a, s);
		return false;
	}
	if (a->settling || a->base_rate == 0) {
		/* A first look at a level: bytes, not chunks, are enough. */
		need = 0;
		min_ms = a->settling ? SETTLE_MS : MIN_INTERVAL_MS;
	} else
		need = need < MIN_ACKS ? MIN_ACKS : need > MAX_ACKS ?
		    MAX_ACKS : need;
	/* Judging a step takes longer than the first look at a level. */
	if (n >= need && dt >= min_ms)
		goto done;
	/* A plain step need not wait for the interval's end. */
	if (!a->settling && n >= EARLY_ACKS && dt >= MIN_INTERVAL_MS) {
		double r = (double)(s->delivered - a->b0) * 1000 / (double)dt;

		if (plain(a, r > a->best ? r : a->best))
			goto done;
	}
	if (s->now_ms < a->t0 + MAX_INTERVAL_MS)
		return false;
	if (n < 2 || dt == 0) {
		mark(a, s);	/* a stall: start over rather than judge it */
		return false;
	}
done:
	*rate = dt > 0 ? (double)(s->delivered - a->b0) * 1000 / (double)dt :
	    0;
	mark(a, s);
	return true;
}

bool
autotune_step(struct autotune *a, const struct autotune_sample *s,
    struct autotune_event *ev)
{
	double rate;

	/* Near the end too few chunks are left to keep every stream busy. */
	if (s->left < 2 * a->level) {
		a->marked = false;
		return false;
	}
	if (!a->marked) {
		mark(a, s);
		return false;
	}
	if (!interval_done(a, s, &rate))
		return false;
	if (a->settling) {
		a->settling = false;
		return false;
	}
	if (a->phase == AUTOTUNE_HOLDING)
		return on_holding(a, rate, s->now_ms, ev);
	/*
	 * A level being tried is judged by its best of JUDGE intervals;
	 * how fast to grow, by its worst: a short interval may catch a
	 * burst of ACKs the kernel of a loaded machine handled late.
	 */
	a->seen++;
	if (rate > a->best)
		a->best = rate;
	if (a->seen == 1 || rate < a->low)
		a->low = rate;
	if (a->seen < JUDGE && !judged_early(a))
		return false;
	if (a->phase == AUTOTUNE_GROWING)
		return on_growing(a, s, ev);
	if (a->phase == AUTOTUNE_VERIFYING)
		return on_verifying(a, s, ev);
	return on_probing(a, s, ev);
}

bool
autotune_cap(struct autotune *a, unsigned max, uint64_t now_ms,
    struct autotune_event *ev)
{
	if (max == 0)
		max = 1;
	if (max >= a->max)
		return false;
	a->max = max;
	if (a->base > max)
		a->base = max;
	if (a->level <= max)
		return false;
	a->base = max;
	hold(a, HOLD_FIRST, false);
	return change(a, max, AUTOTUNE_CAP, 0, now_ms, ev);
}

unsigned
autotune_level(const struct autotune *a)
{
	return a->level;
}

unsigned
autotune_settled(const struct autotune *a)
{
	return a->phase == AUTOTUNE_PROBING ? a->base : a->level;
}

unsigned
autotune_peak(const struct autotune *a)
{
	return a->peak;
}

unsigned
autotune_room(bool told, unsigned user_conns, unsigned user_used,
    unsigned conns, unsigned mine)
{
	uint64_t room;

	if (!told)
		return AUTOTUNE_UNTOLD_CAP;
	room = user_conns > user_used ? user_conns - user_used : 0;
	room += mine;
	/* The whole server's cap, less the control connection. */
	if (conns > 0 && room > conns - 1)
		room = conns - 1;
	return room > 0 ? (unsigned)(room < UINT_MAX ? room : UINT_MAX) : 1;
}

const char *
autotune_why_name(enum autotune_why why)
{
	static const char *const names[] = {
		[AUTOTUNE_GROW] = "grow",
		[AUTOTUNE_BACK] = "back",
		[AUTOTUNE_PROBE_UP] = "probe-up",
		[AUTOTUNE_PROBE_DOWN] = "probe-down",
		[AUTOTUNE_FEWER] = "fewer",
		[AUTOTUNE_CAP] = "cap"
	};

	return (unsigned)why < sizeof(names) / sizeof(names[0]) ?
	    names[why] : "?";
}
