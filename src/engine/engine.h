/* SPDX-License-Identifier: MIT */
/*
 * The receiving engine: listener, connection threads and sessions. This is
 * the only engine header the daemon and the gateway include.
 */
#ifndef PF_ENGINE_H
#define PF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "status.h"

struct engine_config {
	const char	*bind;		/* NULL: 127.0.0.1 */
	unsigned	 port;		/* 0: ephemeral */
	const char	*storage_dir;	/* with s3_target: the node's own
					   files (key file), no uploads */
	const char	*s3_target;	/* "s3://BUCKET/PREFIX", or NULL */
	const char	*s3_endpoint;
	const char	*s3_region;	/* NULL: us-east-1 */
	const char	*s3_credentials;	/* NULL: AWS_* variables */
	const char	*users_file;	/* NULL: default user, see below */
	bool		 insecure_default_user;	/* allow it off loopback */
	const char	*forbidden_exts;	/* NULL: policy default */
	const char	*allowed_exts;		/* exceptions, or NULL */
	unsigned	 max_connections;
	unsigned	 max_user_connections;
	unsigned	 max_sessions;
	unsigned	 max_user_sessions;	/* live sessions per user */
	uint64_t	 max_user_reserved;	/* bytes per user; 0: none */
	unsigned	 max_user_share;	/* % of the free space, 1-100 */
	unsigned	 idle_timeout_ms;
	unsigned	 login_timeout_ms;	/* TLS handshake to login */
	unsigned	 max_login_connections;	/* 0: max_connections / 4 */
	unsigned	 max_ip_logins;	/* logging in from one address */
	unsigned	 min_rate;	/* bytes/s a frame must arrive at */
	unsigned	 stream_nice;	/* data connections' threads: nicer */
	uint64_t	 max_file_size;	/* 0: no limit */
	uint64_t	 min_free_space; /* bytes kept free after an OPEN */
	unsigned	 staging_ttl_s;	/* idle sessions are removed after */
	bool		 no_sync;	/* ACK without fdatasync */
	unsigned	 stop_grace_ms;	/* for chunks in flight at SIGTERM */
	unsigned	 login_log_interval_s;	/* failed-login summaries */
	const char	*tls_cert;	/* PEM files; NULL: plaintext */
	const char	*tls_key;
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
 * A key of its own for label (e.g. the gateway's download links), made
 * from the server key: the same across restarts, and on every node of
 * one S3 bucket (docs/scale-out.md). PF_EIO if hashing fails.
 */
enum pf_status engine_derive_key(const struct engine *e, const char *label,
    uint8_t out[32]);

/*
 * Stops accepting; lets frames in flight finish (up to stop_grace_ms),
 * closes every connection and waits for their threads. Sessions stay on
 * disk to be resumed. Call from one thread, once.
 */
void engine_stop(struct engine *e);

/* Frees e; it must be stopped (or never started). NULL is a no-op. */
void engine_free(struct engine *e);

/*
 * What the gateway may see: copies of engine state, taken under short
 * locks, so a reader never holds up a transfer.
 */

/* Session states as the gateway names them. */
enum engine_state {
	ENGINE_RECEIVING,
	ENGINE_ASSEMBLING,
	ENGINE_COMPLETE,
	ENGINE_FAILED,
	ENGINE_CANCELLED,
	ENGINE_EXPIRED,
	ENGINE_NSTATES
};

#define ENGINE_ID_LEN		36
#define ENGINE_MAX_USER		64
#define ENGINE_MAX_NAME		255
#define ENGINE_DIGEST_HEX	65

struct engine_session_info {
	char		 id[ENGINE_ID_LEN + 1];
	char		 user[ENGINE_MAX_USER + 1];
	char		 name[ENGINE_MAX_NAME + 1];	/* sanitized */
	char		 peer[64];		/* "addr:port", "" if unknown */
	enum engine_state state;
	enum pf_status	 error;		/* PF_OK unless it ended badly */
	uint64_t	 size;
	uint32_t	 chunk_size;
	uint32_t	 chunks_total;
	uint32_t	 chunks_acked;
	uint32_t	 chunks_nacked;
	uint32_t	 chunks_resent;
	uint32_t	 streams;
	uint64_t	 bytes_received;
	int64_t		 created;		/* Unix time, seconds */
	int64_t		 updated;
	int64_t		 finished;		/* 0 while running */
	char		 digest[ENGINE_DIGEST_HEX];	/* "" until complete */
	uint32_t	 files;		/* a transfer's entries; 0: a file */
	bool		 tus;		/* created over tus (gateway) */
};

/* Chunk map characters: see docs/api.md. */
#define ENGINE_CHUNK_PENDING	'.'
#define ENGINE_CHUNK_RECEIVING	'r'
#define ENGINE_CHUNK_DONE	'd'
#define ENGINE_CHUNK_RESENT	's'
#define ENGINE_CHUNK_RETRY	'x'

/* Upper bounds of the chunk receive time histogram, in microseconds. */
#define ENGINE_HIST_BUCKETS	12
extern const uint64_t engine_hist_bounds_us[ENGINE_HIST_BUCKETS];

struct engine_stats {
	int64_t		 started;		/* Unix time, seconds */
	uint64_t	 bytes_received;
	uint64_t	 chunks_acked;
	uint64_t	 chunks_nacked;
	uint64_t	 chunks_resent;
	uint64_t	 auth_failures;
	uint64_t	 sessions_ended[ENGINE_NSTATES];	/* totals */
	unsigned	 connections_open;
	unsigned	 connections_authenticating;
	/* Chunk receive times: cumulative counts per bound, then +Inf. */
	uint64_t	 hist_counts[ENGINE_HIST_BUCKETS + 1];
	uint64_t	 hist_sum_us;
	/* TLS handshakes on the native port: full, and resumed tickets. */
	uint64_t	 tls_handshakes_full;
	uint64_t	 tls_handshakes_resumed;
};

/*
 * Every session the engine knows, live and finished, in *out (a new array
 * of *n entries; free it). Finished ones: completed files found in
 * storage, and the newest failed, cancelled or expired sessions.
 */
enum pf_status engine_sessions(struct engine *e,
    struct engine_session_info **out, size_t *n);

/*
 * The same, but of the finished sessions only those that ended at or
 * after since (Unix time): what changed lately, without copying every
 * stored file's entry.
 */
enum pf_status engine_sessions_since(struct engine *e, int64_t since,
    struct engine_session_info **out, size_t *n);

/*
 * Counts the sessions of user (NULL: everyone's) by state, without
 * copying them.
 */
void engine_count_sessions(struct engine *e, const char *user,
    uint64_t counts[ENGINE_NSTATES]);

/* One session by id into *out; PF_ENOSESSION if unknown. */
enum pf_status engine_session(struct engine *e, const char *id,
    struct engine_session_info *out);

/*
 * The chunk map of session id as a new string of chunks_total characters
 * (ENGINE_CHUNK_*). PF_ENOSESSION if unknown; PF_EIO if the map of a
 * finished session was not kept.
 */
enum pf_status engine_chunk_map(struct engine *e, const char *id,
    char **out);

void engine_stats(struct engine *e, struct engine_stats *out);

/*
 * A number that grows after every change the copies above show at chunk
 * granularity (a session new, ended or deleted, its state, a chunk
 * acknowledged, refused or re-sent, a stream joining or leaving), so a
 * view made from copies taken after reading it stays exact while it
 * stays the same. Bytes of a chunk still arriving and the last activity
 * time change without it. Any thread; no lock.
 */
uint64_t engine_generation(struct engine *e);

/*
 * Cancels session id if it is receiving (its chunks are refused from now
 * on and its staging area goes), or deletes it if finished (a completed
 * one's file and metadata leave storage). user, unless NULL, must own it.
 * *cancelled tells which happened. PF_ENOSESSION if unknown or not user's;
 * PF_EBUSY while it is being assembled.
 */
enum pf_status engine_remove_session(struct engine *e, const char *id,
    const char *user, bool *cancelled);

/*
 * Opens the file of completed session id for reading into *fd, with its
 * details in *info. user, unless NULL, must own it. PF_ENOSESSION if
 * unknown or not user's; PF_EBUSY if it is not complete; PF_EPROTO (info
 * filled) if it is a transfer of many files.
 */
enum pf_status engine_open_file(struct engine *e, const char *id,
    const char *user, int *fd, struct engine_session_info *info);

/*
 * The file list of completed transfer id (a new reference: a JSON array,
 * each entry as COMPLETE lists it, docs/protocol.md) into *files. user,
 * unless NULL, must own it. PF_ENOSESSION if unknown or not user's (or
 * not a transfer), PF_EBUSY if not complete.
 */
enum pf_status engine_transfer_files(struct engine *e, const char *id,
    const char *user, json_t **files);

/*
 * Opens file path of completed transfer id (a stored path from its list,
 * never any other) for reading into *fd, with its receipt in digest.
 * The caller checked the user (engine_transfer_files). PF_ENOSESSION if
 * there is no such stored file. Any thread.
 */
enum pf_status engine_open_transfer_file(struct engine *e, const char *id,
    const char *path, int *fd, char digest[ENGINE_DIGEST_HEX]);

/*
 * Opens entry i of list (what engine_transfer_files gave for id; borrowed)
 * if it is a stored file, into *fd: for reading a whole transfer without
 * reading its list again for each file. PF_ENOSESSION if it is not.
 */
enum pf_status engine_open_listed_file(struct engine *e, const char *id,
    const json_t *list, size_t i, int *fd);

/* True if the engine accepts connections and storage takes writes. */
bool engine_ready(struct engine *e);

/*
 * Before a password of user from addr (the client's address as text) is
 * checked, or a cached login accepted: 0 if it may be now, else the
 * seconds until it may, after too many failed logins of that user from
 * that address or of anyone from it (the native port's count too; see
 * docs/security.md). Runs no PBKDF2. Any thread.
 */
unsigned engine_login_wait(struct engine *e, const char *addr,
    const char *user);

/*
 * Checks a plain password (HTTP Basic) of user from addr against user's
 * verifier: PF_OK or PF_EAUTH. Runs PBKDF2: callers ask
 * engine_login_wait first and cache the outcome. The attempt is begun in
 * the login throttle first (throttle_begin: parallel attempts take no
 * more than the free guesses): PF_ETHROTTLED and the seconds to wait in
 * *wait if it must wait. The outcome counts in the throttle; a failure in
 * the stats and the log (the first of an interval on a line of its own,
 * the rest in a summary).
 */
enum pf_status engine_check_password(struct engine *e, const char *addr,
    const char *user, const char *password, unsigned *wait);

/*
 * The gateway's door (tus, src/httpd/tus.c): uploads sent over HTTP
 * become sessions like the native client's (same ids, limits, policy,
 * staging file, journal, receipt and final rename), written in order at
 * their offset: the bytes of the chunks made durable (data, then
 * journal) from the start of the file on, and those a write left in the
 * next chunk. Only sessions created here are found here: a native one is
 * PF_ENOSESSION, as an unknown one. See gwupload.c.
 */
struct engine_upload;

/* What an HTTP client asks to upload; all borrowed. */
struct engine_upload_new {
	const char	*user;		/* logged in */
	const char	*peer;		/* "addr", for the log and view */
	const char	*name;		/* the client's name: namelen bytes */
	size_t		 namelen;
	uint64_t	 size;
	bool		 partial;	/* tus concatenation: a part */
};

struct engine_upload_info {
	enum engine_state state;
	uint64_t	 offset;	/* what a resume sends from */
	uint64_t	 size;
	int64_t		 expires;	/* Unix time; 0 once finished */
	bool		 partial;	/* a part, for engine_upload_concat */
	char		 name[ENGINE_MAX_NAME + 1];	/* sanitized */
	char		 digest[ENGINE_DIGEST_HEX];	/* once complete */
};

/*
 * Creates the session of n (a fresh UUIDv4 into id) for n->user, after
 * the checks of a native OPEN: the name (PF_EBADNAME, PF_EFORBIDDEN), the
 * size (PF_ETOOLARGE), the space (PF_ENOSPC) and the user's caps
 * (PF_EQUOTA, PF_EBUSY), the store (PF_EPROTO: it takes no tus uploads,
 * store.h); why (cap bytes) says which. It is opened at
 * once (staging area, metadata synced, marked as tus's), so it survives
 * a restart; its content is judged on its first bytes, by the write
 * that completes them, before any is stored. An empty file is complete
 * at once. Any thread.
 */
enum pf_status engine_upload_create(struct engine *e,
    const struct engine_upload_new *n, char id[ENGINE_ID_LEN + 1],
    char *why, size_t cap);

/*
 * Upload id of user (NULL: anyone's) into *out: PF_ENOSESSION if there
 * is none (or it is another user's), PF_ECANCELLED if it ended without
 * completing (out->state says how).
 */
enum pf_status engine_upload_info(struct engine *e, const char *id,
    const char *user, struct engine_upload_info *out);

/*
 * Begins a write to upload id of user at offset off, which must be its
 * offset (engine_upload_info's; or the start of a chunk a write left
 * unfinished; or, before its first min(size, 512) bytes are all there,
 * the end of those held from earlier writes): else PF_EPROTO, with that
 * offset in *durable.
 * PF_ENOSESSION, PF_ECANCELLED (ended), PF_EBUSY (being finished).
 * With hold, the chunks this write completes are kept back until
 * engine_upload_end says whether to keep them (a checksum of the whole
 * body); without, each is made durable as soon as it is whole. *out is
 * new: end it with engine_upload_end. One thread per write.
 */
enum pf_status engine_upload_begin(struct engine *e, const char *id,
    const char *user, uint64_t off, bool hold, struct engine_upload **out,
    uint64_t *durable);

/*
 * Streams n bytes of the body (borrowed) into the staging file. Once it
 * fails it keeps failing the same way, storing nothing more:
 * PF_ETOOLARGE past the upload's size, PF_EFORBIDDEN if its first bytes
 * are refused (the session fails, nothing was stored), PF_EBUSY if
 * another write holds the chunk, PF_ENOSPC, PF_EIO.
 */
enum pf_status engine_upload_write(struct engine_upload *u, const void *p,
    size_t n);

/* The bytes write u may still take: the upload's size less its offset. */
uint64_t engine_upload_room(const struct engine_upload *u);

/* The largest upload accepted (--max-file-size); 0: no limit. */
uint64_t engine_upload_max_size(const struct engine *e);

/* Why a write failed, for the client: "" if it did not. Borrowed. */
const char *engine_upload_why(const struct engine_upload *u);

/*
 * Ends write u and frees it. With keep, the chunks it completed are made
 * durable (they are already without hold), else dropped; a chunk not
 * whole is released, and with keep its bytes count in *offset (until a
 * restart), else it is to be sent again from its start. *offset gets
 * the upload's offset; once it is the size, the upload is finalized (receipt
 * from its chunks, sync, atomic rename): PF_OK then means complete.
 * A new upload's first min(size, 512) bytes, which the policy judges
 * before anything is stored, are held in memory (kept with keep) until
 * all are there; *offset then counts them, though none is durable.
 */
enum pf_status engine_upload_end(struct engine_upload *u, bool keep,
    uint64_t *offset);

/*
 * tus concatenation. A partial upload (n->partial of
 * engine_upload_create) is a session never stored as a file, and its
 * first bytes are not judged; once every one of the nparts partial
 * uploads ids (user's, complete) is there, this creates the upload of n
 * (its size is theirs together) and writes their bytes into it in order,
 * through the same path as a client's, so the policy judges its first
 * bytes before any is stored: on PF_OK it is complete, with its id in
 * id. The parts end either way. PF_ENOSESSION if a part is unknown,
 * another user's or not a part; PF_EPROTO if one is not complete; else
 * as engine_upload_create and engine_upload_write. why (cap bytes)
 * says why. Any thread; it takes as long as copying the file.
 */
enum pf_status engine_upload_concat(struct engine *e,
    const struct engine_upload_new *n, const char *const *ids,
    size_t nparts, char id[ENGINE_ID_LEN + 1], char *why, size_t cap);

/*
 * The ids of the parts upload id was joined from (engine_upload_concat),
 * separated by spaces: a new string the caller frees. NULL if id is not
 * such an upload (or was joined before a restart, or long ago).
 */
char *engine_upload_final_parts(struct engine *e, const char *id);

/*
 * Cancels upload id of user (NULL: anyone's), or deletes it if it is
 * finished (*cancelled false then; NULL: not asked): see
 * engine_remove_session.
 */
enum pf_status engine_upload_cancel(struct engine *e, const char *id,
    const char *user, bool *cancelled);

/*
 * The store's view (S3 storage, src/engine/s3view.c): what the gateway
 * of any node shows of the sessions in the bucket, whichever node took
 * them. engine_store_shared: whether the storage is a store that nodes
 * share (store_shared, store.h), so that sessions this node does not
 * hold are listed, read and removed through it; on the storage
 * directory it is false and the rest answer PF_ENOSESSION (the metrics:
 * all zero).
 */
bool engine_store_shared(struct engine *e);

/* A listing of the bucket is reused for this long (docs/api.md). */
#define ENGINE_STORE_LIST_TTL_S	3

/*
 * Lists the bucket again if the listing kept is older than
 * ENGINE_STORE_LIST_TTL_S (one caller lists; the others use the
 * listing there is meanwhile, or wait for the first) and returns a
 * number that changes whenever what the listing shows does (0 on local
 * storage). A store that does not answer keeps the last listing. MHD
 * threads: the lister blocks while the store lists.
 */
uint64_t engine_store_refresh(struct engine *e);

/*
 * A copy of the listing kept (no request): every session in the bucket,
 * ongoing (ENGINE_RECEIVING, chunks_acked those the store holds),
 * committing (ENGINE_ASSEMBLING), finished (ENGINE_COMPLETE, digest the
 * receipt) or being cancelled (ENGINE_CANCELLED). *out is new (free()).
 */
enum pf_status engine_store_sessions(struct engine *e,
    struct engine_session_info **out, size_t *n);

/*
 * Session id from the listing, else read from the store (a session too
 * new to be listed): PF_ENOSESSION if the bucket has none.
 */
enum pf_status engine_store_session(struct engine *e, const char *id,
    struct engine_session_info *out);

/* Its chunk map, as engine_chunk_map ('d' held, '.' not). */
enum pf_status engine_store_chunk_map(struct engine *e, const char *id,
    char **out);

/*
 * Removes session id of user (NULL: anyone's) from the store, as
 * engine_remove_session does on the storage directory: an ongoing one
 * is cancelled (s3store_cancel: no upload, no key of it left), a
 * finished one deleted (s3store_delete: no object, no key of it left;
 * also one whose DELETE stopped half way), *deleted telling which; the
 * owner's name into owner. This node's own entry of a deleted one goes
 * now, other nodes' at their next listing. PF_ENOSESSION if the bucket
 * has none of user's, PF_EBUSY while it is committing, else the store's
 * status. MHD threads: it blocks while the store works.
 */
enum pf_status engine_store_remove(struct engine *e, const char *id,
    const char *user, bool *deleted, char owner[ENGINE_MAX_USER + 1]);

/* A finished object being read from the store. */
struct engine_store_file;

/*
 * Opens the finished object of session id of user (NULL: anyone's) into
 * *out, its details (size, name, receipt as digest, finished) in *info.
 * PF_ENOSESSION if unknown or not user's, PF_EBUSY if not finished.
 */
enum pf_status engine_store_open(struct engine *e, const char *id,
    const char *user, struct engine_store_file **out,
    struct engine_session_info *info);

/*
 * Reads exactly n bytes at off of f into p: one ranged GET. PF_EIO (or
 * the store's status) if fewer came. One thread at a time per f.
 */
enum pf_status engine_store_read(struct engine_store_file *f, uint64_t off,
    void *p, size_t n);
void engine_store_close(struct engine_store_file *f);

/* Store requests by operation and outcome, and their latencies. */
#define ENGINE_STORE_OPS	13
#define ENGINE_STORE_CODES	5
#define ENGINE_STORE_BUCKETS	13
struct engine_store_stats {
	uint64_t	 requests[ENGINE_STORE_OPS][ENGINE_STORE_CODES];
	/* Cumulative per bound, then +Inf; bounds in microseconds. */
	uint64_t	 hist[ENGINE_STORE_OPS][ENGINE_STORE_BUCKETS + 1];
	uint64_t	 sum_us[ENGINE_STORE_OPS];
	uint64_t	 bounds_us[ENGINE_STORE_BUCKETS];
	const char	*ops[ENGINE_STORE_OPS];		/* "put_part" */
	const char	*codes[ENGINE_STORE_CODES];	/* "2xx", "none" */
};
void engine_store_stats(struct engine *e, struct engine_store_stats *out);

#endif
