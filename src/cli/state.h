/* SPDX-License-Identifier: MIT */
/*
 * Resume state: a small JSON file per upload that remembers the server
 * session holding its chunks, so that running the same upload again
 * resumes it instead of starting over.
 */
#ifndef PF_STATE_H
#define PF_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "proto.h"
#include "status.h"

/* What identifies an upload; every field is borrowed. */
struct state_id {
	const char	*host;
	unsigned	 port;
	const char	*user;
	const char	*path;		/* the file as given; made absolute */
	const struct stat *sb;		/* fstat of the open file */
	uint32_t	 chunk_size;
	const char	*name;		/* as asked for (--name or base) */
};

struct state;

/*
 * Finds the state directory ($PARAFLOW_STATE_DIR, else
 * $XDG_STATE_HOME/paraflow, else $HOME/.local/state/paraflow), creates it
 * (mode 0700) if needed, and takes the lock of id's state file so that two
 * processes never share one. *out is a new handle (free it with
 * state_close), or NULL if no state can be kept: no directory, or another
 * process is running the same upload. That is not an error: the upload
 * then goes on without resume; the reason is logged at info level. The
 * only failure returned is PF_ENOMEM.
 */
enum pf_status state_open(const struct state_id *id, struct state **out);

/*
 * Reads the saved session id into sid if the state file exists and
 * describes this very upload; otherwise sid is "". A missing, damaged or
 * foreign file is not an error. With layout, *layout gets what
 * state_save was given with sid (a new reference), or NULL.
 */
void state_load(struct state *st, char sid[PROTO_ID_LEN + 1],
    json_t **layout);

/*
 * Writes the state file for session sid, with layout (JSON text of an
 * object, borrowed; NULL for none: a transfer's manifest as sent, to
 * amend it on a rerun), atomically (temporary file, fsync, rename, then
 * fsync of the directory), mode 0600, so a kill at any moment leaves the
 * old file or the new one. It holds no secret.
 */
enum pf_status state_save(struct state *st, const char *sid,
    const char *layout);

/* Removes the state file (the session is complete or gone). */
void state_remove(struct state *st);

/*
 * Releases the lock and frees st; the lock file is removed too when there
 * is no state file (left). NULL is a no-op.
 */
void state_close(struct state *st);

/* The path of the state file, for messages; borrowed from st. */
const char *state_path(const struct state *st);

/*
 * The state directory: $PARAFLOW_STATE_DIR, else $XDG_STATE_HOME/paraflow,
 * else ~/.local/state/paraflow. A new string, or NULL if there is none.
 */
char *state_dir(void);

/* Creates dir and its missing parents, each mode 0700. */
enum pf_status state_make_dirs(const char *dir);

#endif
