/* SPDX-License-Identifier: MIT */
/* Connections per user, for --max-user-connections. */
#ifndef PF_PERUSER_H
#define PF_PERUSER_H

#include <stdbool.h>

struct peruser;

/*
 * A counter admitting max connections per user; NULL on ENOMEM. Free
 * with peruser_free (NULL is a no-op).
 */
struct peruser *peruser_new(unsigned max);
void peruser_free(struct peruser *l);

/*
 * Counts one more connection for user; false (and nothing counted) when
 * the user is at the limit, or out of memory. Any thread.
 */
bool peruser_acquire(struct peruser *l, const char *user);

/* Counts one connection of user less. Any thread. */
void peruser_release(struct peruser *l, const char *user);

/* The connections user holds now. Any thread. */
unsigned peruser_count(struct peruser *l, const char *user);

#endif
