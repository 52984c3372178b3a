/* SPDX-License-Identifier: MIT */
/*
 * An amended resume of a transfer: the client's tree changed since the
 * interrupted run, so it resumes with a new manifest in which unchanged
 * files keep their place in the payload and the others lie past it.
 * The chunks that hold only unchanged bytes are kept, the rest are to be
 * sent again, and the staging area is rewritten crash-safely.
 */
#ifndef PF_AMEND_H
#define PF_AMEND_H

#include "session.h"
#include "status.h"

struct policy;
struct registry;
struct storage;

/* Where the amend works; all borrowed. */
struct amend_env {
	struct registry		*registry;
	struct storage		*storage;
	const struct policy	*policy;
	unsigned		 ttl_s;		/* --staging-ttl */
};

/*
 * Amends live transfer s (the caller's reference, taken over whatever
 * happens) to f (borrowed: its size, head and manifest, already
 * checked). Waits for the connections of the interrupted run to leave s
 * (PF_EBUSY if they do not), then rewrites its staging area (see
 * recovery_amend) and brings it back as a new live session in *out (a
 * new reference). On failure the session on disk, old or amended, is
 * brought back if it can be, and why says what went wrong. Control
 * connection thread.
 */
enum pf_status amend_transfer(const struct amend_env *e, struct session *s,
    const struct session_file *f, struct session **out, char *why,
    size_t whycap);

#endif
