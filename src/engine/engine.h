/* SPDX-License-Identifier: MIT */
/*
 * The receiving engine: listener, connection threads and sessions. This is
 * the only engine header the daemon and the gateway include.
 */
#ifndef PF_ENGINE_H
#define PF_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

struct engine_config {
	const char	*bind;		/* NULL: 127.0.0.1 */
	unsigned	 port;		/* 0: ephemeral */
	const char	*storage_dir;
	const char	*users_file;	/* NULL: default user, see below */
	bool		 insecure_default_user;	/* allow it off loopback */
	const char	*forbidden_exts;	/* NULL: policy default */
	unsigned	 max_connections;
	unsigned	 max_user_connections;
	unsigned	 max_sessions;
	unsigned	 idle_timeout_ms;
	unsigned	 min_rate;	/* bytes/s a frame must arrive at */
	uint64_t	 max_file_size;	/* 0: no limit */
	uint64_t	 min_free_space; /* bytes kept free after an OPEN */
	unsigned	 staging_ttl_s;	/* idle sessions are removed after */
	bool		 no_sync;	/* ACK without fdatasync */
	unsigned	 stop_grace_ms;	/* for chunks in flight at SIGTERM */
};

/* Fills cfg with the defaults documented in paraflowd(8). */
void engine_config_defaults(struct engine_config *cfg);

struct engine;

/*
 * Loads users, opens storage and binds the listener (so the port is known
 * and a bad address fails here, at start-up). *out is new.
 */
enum pf_status engine_new(const struct engine_config *cfg,
    struct engine **out);

/* Starts the accept thread. */
enum pf_status engine_start(struct engine *e);

/* The bound TCP port. */
unsigned engine_port(const struct engine *e);

/*
 * Stops accepting; lets frames in flight finish (up to stop_grace_ms),
 * closes every connection and waits for their threads. Sessions stay on
 * disk to be resumed. Call from one thread, once.
 */
void engine_stop(struct engine *e);

/* Frees e; it must be stopped (or never started). NULL is a no-op. */
void engine_free(struct engine *e);

#endif
