/* SPDX-License-Identifier: MIT */
/*
 * The storage directory's structures, shared by the modules that work on
 * it (storage.c, journal.c, recovery.c, finalize.c) and by nothing above
 * them: sessions see a struct staging only as a handle.
 */
#ifndef PF_STORAGE_INT_H
#define PF_STORAGE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "payload.h"
#include "storage.h"

#define STAGING_DIR	".staging"
#define DATA_NAME	PAYLOAD_DATA_NAME
#define SESSION_NAME	"session.json"
#define JOURNAL_NAME	"journal"
#define MAX_META	(64 * 1024)

struct storage {
	char			*path;
	int			 rootfd;
	int			 stagingfd;
	enum storage_sync	 sync;
	_Atomic unsigned long	 probes;	/* names of storage_writable */
	_Atomic uint64_t	 promised;	/* transfers' files not yet
						   reserved: payload.h */
};

/* A journal record waiting for the next sync, and who waits for it. */
struct journal_pending;

struct staging {
	char			 id[64];
	int			 dirfd;
	struct payload		*pl;		/* NULL until made */
	int			 jfd;
	enum storage_sync	 sync;

	/* Group commit by a committer thread: see journal_submit. */
	pthread_mutex_t		 lock;
	pthread_cond_t		 synced;	/* a batch is done */
	pthread_cond_t		 work;		/* records are queued */
	pthread_t		 thread;
	bool			 running, closing;
	struct journal_pending	*queue;
	size_t			 queued, cap;
	off_t			 jlen;	/* bytes of whole records */
	_Atomic int		 broken;	/* a sync failed: pf_status */
};

/*
 * Opens directory name beneath dirfd. Returns the fd, or -1 with errno
 * set.
 */
int storage_open_dir(int dirfd, const char *name);

/*
 * A new, unopened handle on staging area id (every fd -1), or NULL on
 * ENOMEM. Free with storage_staging_close.
 */
struct staging *storage_staging_new(const char *id, enum storage_sync sync);

/*
 * Replaces name beneath dirfd with json, atomically and durably (through
 * pf_write_atomic). PF_ETOOLARGE past MAX_META, which storage_read_json
 * could not read back.
 */
enum pf_status storage_write_json(int dirfd, const char *name,
    const json_t *json);

/*
 * Reads a metadata file beneath dirfd: a new reference, or NULL if
 * missing (*rc PF_EBADFRAME), unreadable (PF_EIO) or malformed
 * (PF_EBADFRAME).
 */
json_t *storage_read_json(int dirfd, const char *name, enum pf_status *rc);

#endif
