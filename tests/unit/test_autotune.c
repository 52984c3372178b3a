/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the --threads auto controller, fed by simulated links:
 * one where every flow is capped (more streams help up to the link's
 * rate), one where only the whole link is (more streams do not help), and
 * links that change from one to the other in the middle of a transfer.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "autotune.h"

#define MB		1000000.0
#define CHUNK		(1024 * 1024)
#define TICK_MS		100
#define LAG_MS		300	/* a new level takes effect this late */

/* A link: its goodput with n streams, maybe depending on the time. */
typedef double (*link_fn)(unsigned n, uint64_t now_ms);

/* What one simulated transfer did. */
struct sim {
	unsigned	 settled, peak, changes;
	double		 away;	/* share of ticks spent probing */
	unsigned	 level_at[1024];	/* per second */
	uint64_t	 at32_ms;	/* when 32 streams were first wanted */
};

/* Every flow at 4 MB/s, the link at 200 MB/s. */
static double
per_flow(unsigned n, uint64_t now_ms)
{
	(void)now_ms;
	return n * 4 * MB < 200 * MB ? n * 4 * MB : 200 * MB;
}

/* 100 MB/s for the whole link, whatever the streams. */
static double
whole_link(unsigned n, uint64_t now_ms)
{
	(void)n;
	(void)now_ms;
	return 100 * MB;
}

/* Flows capped for 30 s, then only the whole link at 20 MB/s. */
static double
per_flow_then_whole(unsigned n, uint64_t now_ms)
{
	return now_ms < 30000 ? per_flow(n, now_ms) : 20 * MB;
}

/* The whole link for 30 s, then every flow capped at 4 MB/s. */
static double
whole_then_per_flow(unsigned n, uint64_t now_ms)
{
	return now_ms < 30000 ? 10 * MB : per_flow(n, now_ms);
}

/*
 * Other load on a shared machine: in one half-second of six or so the
 * transfer gets 60 % of the link, never more than all of it.
 */
static double
dip(uint64_t now_ms)
{
	return (now_ms / 500 * 2654435761u) % 100 < 15 ? 0.6 : 1.0;
}

static double
whole_link_dips(unsigned n, uint64_t now_ms)
{
	return whole_link(n, now_ms) * dip(now_ms);
}

static double
per_flow_dips(unsigned n, uint64_t now_ms)
{
	return per_flow(n, now_ms) * dip(now_ms);
}

/* A deterministic noise of +-5 %. */
static double
noise(uint32_t *rng)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 17;
	*rng ^= *rng << 5;
	return 0.95 + (double)(*rng % 1001) / 10000;
}

/* With AT_TRACE set in the environment, each change is printed. */
static void
trace(const struct autotune_event *ev)
{
	printf("# %6.1f s: %u -> %u %s, %.1f MB/s\n", ev->at_ms / 1000.0,
	    ev->from, ev->to, autotune_why_name(ev->why), ev->rate / MB);
}

/* Runs the controller over link for ms, max streams at most. */
static void
simulate(link_fn link, unsigned max, uint64_t ms, struct sim *out)
{
	struct autotune a;
	struct autotune_event ev;
	struct autotune_sample s = { 0 };
	unsigned effective, pending;
	uint64_t changed_at = 0, ticks = 0, away = 0;
	double per = 0, got;
	uint32_t rng = 12345;

	*out = (struct sim){ 0 };
	autotune_init(&a, max);
	effective = pending = autotune_level(&a);
	for (s.now_ms = TICK_MS; s.now_ms <= ms; s.now_ms += TICK_MS) {
		if (pending != effective && s.now_ms >= changed_at + LAG_MS)
			effective = pending;
		got = link(effective, s.now_ms) * TICK_MS / 1000 * noise(&rng);
		s.delivered += (uint64_t)got;
		/*
		 * The streams share the link fairly and finish their chunks
		 * together: the ACKs come in bursts of one per stream.
		 */
		per += got / effective;
		for (; per >= CHUNK; per -= CHUNK)
			s.acks += effective;
		s.left = 1000000;
		/* New streams send LAG_MS late; retired ones stop at once. */
		s.joining = pending > effective ? pending - effective : 0;
		if (autotune_step(&a, &s, &ev)) {
			if (getenv("AT_TRACE") != NULL)
				trace(&ev);
			out->changes++;
			pending = autotune_level(&a);
			changed_at = s.now_ms;
			assert_true(pending >= 1 && pending <= max);
		}
		if (out->at32_ms == 0 && autotune_level(&a) >= 32)
			out->at32_ms = s.now_ms;
		away += autotune_level(&a) != autotune_settled(&a);
		if (s.now_ms % 1000 == 0 && s.now_ms / 1000 < 1024)
			out->level_at[s.now_ms / 1000] = autotune_level(&a);
		ticks++;
	}
	out->settled = autotune_settled(&a);
	out->peak = autotune_peak(&a);
	out->away = (double)away / (double)ticks;
	printf("# settled %u, peak %u, %u changes, %.1f %% of the time "
	    "probing\n", out->settled, out->peak, out->changes,
	    100 * out->away);
}

static void
test_per_flow_cap_grows(void **state)
{
	struct sim r;

	(void)state;
	simulate(per_flow, 64, 60000, &r);
	/* 50 flows fill the link: at least 32, and never past the cap. */
	assert_true(r.settled >= 32);
	assert_true(r.peak <= 64);
	/* 4, 8, 16, 32 took less than 10 s. */
	assert_true(r.level_at[10] >= 32);
	assert_true(r.away < 0.2);
}

/*
 * Every flow at 12.5 MB/s (100 Mbit/s), the machine at 400 MB/s: the
 * bench's link. Near-linear gains grow by 4 at a time, so 32 streams are
 * reached within 2 s, not after 4 doublings.
 */
static double
per_flow_fast(unsigned n, uint64_t now_ms)
{
	(void)now_ms;
	return n * 12.5 * MB < 400 * MB ? n * 12.5 * MB : 400 * MB;
}

static void
test_near_linear_gains_grow_faster(void **state)
{
	struct sim r;

	(void)state;
	simulate(per_flow_fast, 64, 20000, &r);
	assert_true(r.level_at[2] >= 32);
	/*
	 * A step that gains nearly the ideal is judged by one interval, not
	 * two: 8 -> 32 comes 1.1 s in (1.3 s when every step took two).
	 */
	assert_true(r.at32_ms > 0 && r.at32_ms <= 1200);
	assert_true(r.settled >= 32);
}

/* 8 streams do 20 % better than 4, more do no better: it stays at 8. */
static double
small_gain(unsigned n, uint64_t now_ms)
{
	(void)now_ms;
	return n >= 8 ? 60 * MB : 50 * MB;
}

static void
test_small_gain_holds(void **state)
{
	struct sim r;

	(void)state;
	simulate(small_gain, 64, 30000, &r);
	/*
	 * It measured 4 again, kept 8 without trying 16 at once; later
	 * probes try 12.
	 */
	assert_int_equal(r.level_at[7], 8);
	assert_true(r.peak <= 12);
	assert_true(r.settled >= 6 && r.settled <= 8);
}

/*
 * Right after 8 streams start, a loaded kernel hands over ACKs it held
 * back: one interval looks 40 % faster on a link where 8 do no better
 * than 4. Measured again, 4 do as well, and it stays at 4.
 */
static double
burst_whole(unsigned n, uint64_t now_ms)
{
	return n == 8 && now_ms >= 900 && now_ms < 1200 ? 14 * MB : 10 * MB;
}

static void
test_small_gain_is_checked_again(void **state)
{
	struct sim r;

	(void)state;
	simulate(burst_whole, 64, 10000, &r);
	assert_true(r.peak <= 8);
	assert_true(r.level_at[5] <= 4);
	assert_true(r.settled <= 4);
}

/* No level above two chunks per stream of what is left. */
static void
test_growth_leaves_chunks_per_stream(void **state)
{
	struct autotune a;
	struct autotune_event ev;
	struct autotune_sample s = { .left = 40 };

	(void)state;
	autotune_init(&a, 64);
	for (s.now_ms = TICK_MS; s.now_ms < 20000; s.now_ms += TICK_MS) {
		s.delivered += (uint64_t)(per_flow_fast(autotune_level(&a),
		    0) * TICK_MS / 1000);
		s.acks = s.delivered / CHUNK;
		autotune_step(&a, &s, &ev);
		assert_true(autotune_level(&a) <= 20);
	}
	assert_int_equal(autotune_peak(&a), 20);
}

/* Settling lasts until the new streams have joined, not a fixed time. */
static void
test_waits_for_joining_streams(void **state)
{
	struct autotune a;
	struct autotune_event ev;
	struct autotune_sample s = { .left = 100000 };

	(void)state;
	autotune_init(&a, 64);
	/* 4 streams still logging in: no look at the link for 5 s. */
	s.joining = 4;
	for (s.now_ms = TICK_MS; s.now_ms < 5000; s.now_ms += TICK_MS) {
		assert_false(autotune_step(&a, &s, &ev));
		assert_true(a.settling);
	}
	/* A stream kept waiting for room does not hold it for ever. */
	s.joining = 1;
	for (; s.now_ms < 12000; s.now_ms += TICK_MS) {
		s.delivered += 5 * CHUNK;
		s.acks += 5;
		if (autotune_step(&a, &s, &ev))
			break;
	}
	/* It looked at 4 streams after 8 s and tried more. */
	assert_int_equal(ev.why, AUTOTUNE_GROW);
	assert_true(ev.at_ms >= 8000 && ev.at_ms < 12000);
}

static void
test_whole_link_cap_stays_low(void **state)
{
	struct sim r;

	(void)state;
	simulate(whole_link, 64, 60000, &r);
	assert_true(r.settled <= 2);
	/* It starts at 4 and tried one doubling, no more. */
	assert_true(r.peak <= 2 * AUTOTUNE_START);
	assert_true(r.away < 0.2);
}

static void
test_dips_do_not_fool_it(void **state)
{
	struct sim r;

	(void)state;
	simulate(whole_link_dips, 64, 60000, &r);
	assert_true(r.settled <= AUTOTUNE_START);
	assert_true(r.peak <= 2 * AUTOTUNE_START);
	assert_true(r.away < 0.25);
	simulate(per_flow_dips, 64, 60000, &r);
	assert_true(r.settled >= 32);
}

static void
test_max_threads_is_respected(void **state)
{
	struct sim r;

	(void)state;
	simulate(per_flow, 6, 30000, &r);
	assert_int_equal(r.settled, 6);
	assert_int_equal(r.peak, 6);
	simulate(per_flow, 1, 10000, &r);
	assert_int_equal(r.peak, 1);
	assert_int_equal(r.changes, 0);
}

static void
test_reacts_when_flows_stop_being_capped(void **state)
{
	struct sim r;

	(void)state;
	simulate(per_flow_then_whole, 64, 120000, &r);
	assert_true(r.level_at[29] >= 32);
	/* Fewer streams do as well on the whole link: it goes down. */
	assert_true(r.settled < 32);
}

static void
test_reacts_when_flows_become_capped(void **state)
{
	struct sim r;

	(void)state;
	simulate(whole_then_per_flow, 64, 120000, &r);
	assert_true(r.level_at[29] <= 4);
	/* The periodic probe up finds that more streams help now. */
	assert_true(r.settled >= 32);
}

static void
test_cap_lowers_the_level(void **state)
{
	struct autotune a;
	struct autotune_event ev;
	struct autotune_sample s = { .left = 1000 };

	(void)state;
	autotune_init(&a, 64);
	/* Grow on a per-flow link until 16 streams. */
	for (s.now_ms = TICK_MS; autotune_level(&a) < 16; s.now_ms += TICK_MS) {
		assert_true(s.now_ms < 60000);
		s.delivered += (uint64_t)(per_flow(autotune_level(&a), 0) *
		    TICK_MS / 1000);
		s.acks = s.delivered / CHUNK;
		autotune_step(&a, &s, &ev);
	}
	assert_true(autotune_cap(&a, 5, s.now_ms, &ev));
	assert_int_equal(ev.why, AUTOTUNE_CAP);
	assert_int_equal(ev.to, 5);
	assert_int_equal(autotune_level(&a), 5);
	/* A higher cap later changes nothing: caps only come down. */
	assert_false(autotune_cap(&a, 10, s.now_ms, &ev));
	for (int i = 0; i < 600; i++) {
		s.now_ms += TICK_MS;
		s.delivered += (uint64_t)(per_flow(autotune_level(&a), 0) *
		    TICK_MS / 1000);
		s.acks = s.delivered / CHUNK;
		autotune_step(&a, &s, &ev);
		assert_true(autotune_level(&a) <= 5);
	}
}

static void
test_waits_for_retired_streams(void **state)
{
	struct autotune a;
	struct autotune_event ev;
	struct autotune_sample s = { .left = 100000 };
	unsigned level;

	(void)state;
	autotune_init(&a, 64);
	/* A link where 4 streams are as good as 8: it goes back to 4. */
	for (s.now_ms = TICK_MS; s.now_ms < 60000; s.now_ms += TICK_MS) {
		s.delivered += 10 * CHUNK;
		s.acks += 10;
		if (autotune_step(&a, &s, &ev) && ev.why == AUTOTUNE_BACK)
			break;
	}
	assert_int_equal(ev.why, AUTOTUNE_BACK);
	level = autotune_level(&a);
	/*
	 * The retired streams take 5 s to send their chunks in flight, at
	 * twice the rate: nothing may be judged from that.
	 */
	for (int i = 0; i < 50; i++) {
		s.now_ms += TICK_MS;
		s.delivered += 20 * CHUNK;
		s.acks += 20;
		s.draining = 4;
		assert_false(autotune_step(&a, &s, &ev));
		assert_int_equal(autotune_level(&a), level);
		/* Still settling: no interval has been measured. */
		assert_true(a.settling);
	}
	/* Once they are gone, measuring starts. */
	s.draining = 0;
	for (int i = 0; i < 10; i++) {
		s.now_ms += TICK_MS;
		s.delivered += 10 * CHUNK;
		s.acks += 10;
		autotune_step(&a, &s, &ev);
	}
	assert_false(a.settling);
}

static void
test_no_change_near_the_end(void **state)
{
	struct autotune a;
	struct autotune_event ev;
	struct autotune_sample s = { .left = 3 };

	(void)state;
	autotune_init(&a, 64);
	for (s.now_ms = TICK_MS; s.now_ms < 20000; s.now_ms += TICK_MS) {
		s.acks = s.now_ms / 10;
		s.delivered = s.acks * CHUNK;
		assert_false(autotune_step(&a, &s, &ev));
	}
	assert_int_equal(autotune_level(&a), AUTOTUNE_START);
}

static void
test_room_from_the_server_limits(void **state)
{
	(void)state;
	/* An older server tells nothing: the safe cap. */
	assert_int_equal(autotune_room(false, 0, 0, 0, 0),
	    AUTOTUNE_UNTOLD_CAP);
	/* 3 per user, the control connection held: 2 data connections. */
	assert_int_equal(autotune_room(true, 3, 1, 256, 0), 2);
	/* At a new login our own 2 data connections are among the used. */
	assert_int_equal(autotune_room(true, 3, 3, 256, 2), 2);
	/* Another upload of the user holds some. */
	assert_int_equal(autotune_room(true, 8, 5, 256, 0), 3);
	/* The whole server's cap, less the control connection. */
	assert_int_equal(autotune_room(true, 64, 1, 5, 0), 4);
	/* Never below one stream. */
	assert_int_equal(autotune_room(true, 2, 2, 256, 0), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_flow_cap_grows),
		cmocka_unit_test(test_near_linear_gains_grow_faster),
		cmocka_unit_test(test_small_gain_holds),
		cmocka_unit_test(test_small_gain_is_checked_again),
		cmocka_unit_test(test_growth_leaves_chunks_per_stream),
		cmocka_unit_test(test_waits_for_joining_streams),
		cmocka_unit_test(test_whole_link_cap_stays_low),
		cmocka_unit_test(test_dips_do_not_fool_it),
		cmocka_unit_test(test_max_threads_is_respected),
		cmocka_unit_test(test_reacts_when_flows_stop_being_capped),
		cmocka_unit_test(test_reacts_when_flows_become_capped),
		cmocka_unit_test(test_cap_lowers_the_level),
		cmocka_unit_test(test_waits_for_retired_streams),
		cmocka_unit_test(test_no_change_near_the_end),
		cmocka_unit_test(test_room_from_the_server_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
