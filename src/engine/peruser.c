/* SPDX-License-Identifier: MIT */
/* Per-user connection counts, checked at login and at JOIN. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "peruser.h"

struct user {
	char		 name[PROTO_MAX_USER + 1];
	unsigned	 conns;
};

struct peruser {
	pthread_mutex_t	 lock;
	unsigned	 max;
	struct user	*v;
	unsigned	 n;
};

struct peruser *
peruser_new(unsigned max)
{
	struct peruser *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	pthread_mutex_init(&l->lock, NULL);
	l->max = max;
	return l;
}

void
peruser_free(struct peruser *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->v);
	free(l);
}

bool
peruser_acquire(struct peruser *l, const char *user)
{
	struct user *u = NULL;
	bool ok = false;

	pthread_mutex_lock(&l->lock);
	for (unsigned i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, user) == 0)
			u = &l->v[i];
	if (u == NULL) {
		struct user *n = realloc(l->v, (l->n + 1) * sizeof(*n));

		if (n != NULL) {
			l->v = n;
			u = &n[l->n++];
			snprintf(u->name, sizeof(u->name), "%s", user);
			u->conns = 0;
		}
	}
	if (u != NULL && u->conns < l->max) {
		u->conns++;
		ok = true;
	}
	pthread_mutex_unlock(&l->lock);
	return ok;
}

void
peruser_release(struct peruser *l, const char *user)
{
	pthread_mutex_lock(&l->lock);
	for (unsigned i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, user) == 0 && l->v[i].conns > 0)
			l->v[i].conns--;
	pthread_mutex_unlock(&l->lock);
}

unsigned
peruser_count(struct peruser *l, const char *user)
{
	unsigned n = 0;

	pthread_mutex_lock(&l->lock);
	for (unsigned i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, user) == 0)
			n = l->v[i].conns;
	pthread_mutex_unlock(&l->lock);
	return n;
}
