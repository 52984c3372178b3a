/* SPDX-License-Identifier: MIT */
/*
 * One upload session and its state machine: opened (or recovered), its
 * chunks claimed, done or released by the connections that carry them,
 * then committed, failed, cancelled or expired. Every transition of its
 * state is made here. A session is reference-counted: the registry holds
 * one reference while it is live, and every connection working on it
 * holds another. Its fields are private to session.c.
 */
#ifndef PF_SESSION_H
#define PF_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "auth.h"
#include "digest.h"
#include "journal.h"
#include "policy.h"
#include "status.h"


/*
 * The legal transitions (see transition() in session.c):
 *   RECEIVING  -> ASSEMBLING (commit begins), FAILED, CANCELLED, EXPIRED
 *   ASSEMBLING -> COMPLETE, FAILED (wrong receipt), RECEIVING (the final
 *                 step failed: every chunk is still held, commit again)
 */
enum session_state {
	SESSION_RECEIVING,
	SESSION_ASSEMBLING,
	SESSION_COMPLETE,
	SESSION_FAILED,
	SESSION_CANCELLED,
	SESSION_EXPIRED
};

/* What session_claim_chunk found. */
enum session_claim {
	SESSION_CLAIMED,	/* the caller now receives the chunk */
	SESSION_HELD,		/* acknowledged already: ACK it again */
	SESSION_BUSY		/* another connection receives it: NACK */
};

/*
 * The file a client OPENs, as checked against policy; all borrowed. Its
 * user and size were given to session_new already.
 */
struct session_file {
	const char	*name;		/* sanitized */
	const char	*client_name;	/* as sent; may hold any bytes */
	size_t		 client_name_len;
	const char	*peer;
	uint64_t	 size;
	uint32_t	 chunk_size;
	const uint8_t	*head;
	size_t		 headlen;
	/* Created over tus (gwupload.c), kept as the metadata's "origin":
	   only such a session is tus's to write, show or end. Its head
	   may then be empty until its first bytes are judged. */
	bool		 tus;
	/* A transfer's manifest: session_open takes it over, success or
	   not (session_matches only reads it); NULL for one file. */
	struct manifest	*manifest;
	/* A transfer's chunks hashed in pieces (PFC2): kept in the
	   metadata, so a resume hashes them so too. */
	bool		 pieces;
};

/* A transfer's manifest, in its staging area. */
#define MANIFEST_NAME	"manifest.json"

struct chunkhash;
struct manifest;
struct proto_span;
struct session;
struct staging;
struct storage;
struct engine_session_info;

/*
 * A new session for nchunks chunks, in RECEIVING but not yet ready (not
 * shown, not resumable), with id or, if id is NULL, a fresh UUIDv4 id;
 * *out holds the caller's one reference. user (borrowed) and size are
 * fixed from here on, so the registry can count them against the user's
 * caps before the session is opened; a recovered session passes NULL and
 * 0 and gets them from session_restore. PF_ENOMEM. Any thread.
 */
enum pf_status session_new(uint32_t nchunks, const char *id,
    const char *user, uint64_t size, struct session **out);

/* Takes another reference to s. Any thread. */
void session_ref(struct session *s);

/*
 * Drops a reference. The last one frees s and its staging area: removed
 * from disk if the session failed, was cancelled or expired, otherwise
 * left there to be resumed (after a restart, say). NULL is a no-op.
 */
void session_unref(struct session *s);

/*
 * Opens new session s for file f (copied): creates its staging area in
 * storage (borrowed; it must outlive s) and makes s ready. PF_EINTERNAL
 * if memory ran out before the staging area was begun, else what
 * storage_staging_create returned. On failure the caller ends s.
 */
enum pf_status session_open(struct session *s, struct storage *storage,
    const struct session_file *f);

/*
 * Brings new session s back from the staging metadata meta (borrowed),
 * checking every field as if it came from a client, with the staging
 * area st (owned by s on success; on failure the caller keeps it), the n
 * journaled chunks (indices and 32-byte digests, borrowed) and the time
 * of the last chunk; makes s ready. PF_EBADFRAME if the metadata does not hold.
 * At start-up.
 */
enum pf_status session_restore(struct session *s, struct storage *storage,
    const json_t *meta, struct staging *st, const uint32_t *indices,
    const uint8_t *digests, uint32_t n, time_t last_active);

/*
 * Has the files of transfer s (opened or restored, in the storage
 * directory) judged on pool jp (borrowed; NULL: none) as their chunks
 * become durable, from those it holds already on; COMMIT then judges
 * only the rest. Verdicts are dropped with s (an amend makes a new s).
 * No-op for a single file. Once, by the thread that made s.
 */
struct judge_pool;
void session_judge(struct session *s, struct judge_pool *jp);

/*
 * Binds new session s to the store st (borrowed; it must outlive s),
 * before session_open: on a shared store (store.h) session_open then
 * creates it there (a transfer or tus: PF_EPROTO), else in the storage
 * directory as without it. Any thread.
 */
struct store;
struct s3store_record;
void session_use_store(struct session *s, const struct store *st);

/* True if s lives in a shared store (session_use_store). */
bool session_remote(const struct session *s);

/*
 * Brings new session s (made with rec's id, user and size) back from the
 * shared store st, for file f (copied, as session_open; NULL: the record's own
 * fields, for a JOIN): rec (copied) is its record, the chunks held are
 * what the store holds now (ListParts). Its owner is then
 * SESSION_OWNER_ELSEWHERE and its key unknown (session_reload_key).
 * Makes s ready. PF_EINTERNAL on ENOMEM, else the store's status.
 */
enum pf_status session_restore_remote(struct session *s,
    const struct store *st, const struct s3store_record *rec,
    const struct session_file *f);

/* The owner of a copy of a stored session no login here holds yet. */
#define SESSION_OWNER_ELSEWHERE	UINT64_MAX

/*
 * For a session on the store, which other nodes serve too: sets
 * *finished if its object is in the bucket (another node committed it),
 * else adds the chunks the store holds now to those s holds. PF_OK
 * (nothing to do) for a local session; else the store's status.
 */
enum pf_status session_refresh(struct session *s, bool *finished);

/* The store record of s (borrowed), or NULL for a local session. */
const struct s3store_record *session_record(const struct session *s);

/*
 * On the store: writes the session key of s (its newest login's) where
 * every node checks a JOIN (s3store_put_key); PF_OK for a local session.
 * session_reload_key reads it back into s (PF_ENOSESSION if none, or for
 * a local session). Any thread.
 */
enum pf_status session_publish_key(struct session *s);
enum pf_status session_reload_key(struct session *s);

/* Reads the id of staging metadata into id; PF_EBADFRAME if malformed. */
enum pf_status session_id_from_json(const json_t *meta,
    char id[PROTO_ID_LEN + 1]);

/*
 * True if nothing but the caller's one reference holds s: no data or
 * control connection, not in the table. Any thread.
 */
bool session_alone(struct session *s);

/* How often the transfer s was amended (see amend.h), and the file
 * name its manifest is kept under (borrowed). */
unsigned session_amends(const struct session *s);
const char *session_manifest_file(const struct session *s);

/*
 * The chunks s holds, as new arrays of *n indices and their 32-byte
 * digests (the caller frees both, also on failure). PF_ENOMEM.
 */
enum pf_status session_held_records(struct session *s, uint32_t **indices,
    uint8_t **digests, uint32_t *n);

/*
 * The staging metadata of transfer s amended to f (borrowed: its size,
 * head and manifest), as a new object (NULL on ENOMEM); mfname gets the
 * file name its manifest is to be kept under.
 */
json_t *session_amended_meta(const struct session *s,
    const struct session_file *f, char mfname[32]);

/*
 * True if s is receiving and was opened by user for file f: what a
 * resume must match.
 */
bool session_matches(struct session *s, const char *user,
    const struct session_file *f);

/*
 * Claims chunk index (below session_nchunks) for the calling connection:
 * PENDING -> RECEIVING. Only the claimant writes a chunk, so an
 * acknowledged chunk is never overwritten. *resent tells whether the
 * chunk had been sent before (it is then counted as re-sent).
 */
enum session_claim session_claim_chunk(struct session *s, uint32_t index,
    bool *resent);

/*
 * Writes n bytes of a claimed chunk at file offset off into the staging
 * area. PF_ENOSPC or PF_EIO. Thread-safe.
 */
enum pf_status session_write_chunk(struct session *s, uint64_t off,
    const void *p, size_t n);

/*
 * On the store: stores claimed chunk index, all n bytes of it at p,
 * whose digest was verified (body: the bytes' plain SHA-256, which the
 * store checks), and marks it done: PF_OK is the durable
 * ACK (the store answered the part's PUT). On failure the chunk stays
 * claimed (release it); PF_ECHECKSUM if another node holds other bytes
 * for it, PF_ECANCELLED if the session was cancelled or expired.
 */
enum pf_status session_put_chunk(struct session *s, uint32_t index,
    const void *p, size_t n, const uint8_t digest[PF_SHA256_LEN],
    const uint8_t body[PF_SHA256_LEN]);

/*
 * Makes claimed chunk index durable (data, then journal: see
 * journal_commit_chunk) and marks it done with digest. On failure the
 * chunk stays claimed (release it); if session_broken then holds, the
 * session must fail.
 */
enum pf_status session_done_chunk(struct session *s, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN]);

/*
 * The same in two steps, so the caller goes on receiving while the chunk
 * is synced: session_sync_chunk queues claimed chunk index (see
 * journal_submit; t is the caller's until done), and once t is done with
 * PF_OK, session_held_chunk marks it done with digest. Until then the
 * chunk stays claimed; on a failure release it (and if session_broken
 * holds, the session must fail). session_wait_chunk waits for t;
 * session_settle MUST be called before closing the wakefd of a ticket
 * that was seen done without session_wait_chunk.
 */
enum pf_status session_sync_chunk(struct session *s, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN], struct journal_ticket *t);
void session_held_chunk(struct session *s, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN]);
enum pf_status session_wait_chunk(struct session *s,
    struct journal_ticket *t);
void session_settle(struct session *s);

/*
 * Releases claimed chunk index (RECEIVING -> PENDING) to be sent again;
 * with nacked, counts it as failing its check.
 */
void session_release_chunk(struct session *s, uint32_t index, bool nacked);

/*
 * Claims chunk index again to go on with it (tus: a request that ends
 * inside a chunk releases it, the next one goes on from where it ended):
 * as session_claim_chunk, but not counted as sent again.
 */
enum session_claim session_reclaim_chunk(struct session *s, uint32_t index);

/* True while a connection or request receives chunk index. */
bool session_chunk_busy(struct session *s, uint32_t index);

/* True once a sync of the staging area failed: nothing staged holds. */
bool session_broken(struct session *s);

/*
 * Commits s with the client's receipt want: RECEIVING -> ASSEMBLING,
 * the receipt checked against the chunk digests, then finalize_file
 * (or finalize_transfer with policy p for a transfer's files);
 * COMPLETE on success. On failure: PF_ECANCELLED if s was not receiving
 * (nothing changed), PF_ECHECKSUM if the receipt does not match (s is
 * FAILED: retire it), PF_EINTERNAL if out of memory, or the error of
 * finalize_file; after the last two s is RECEIVING again with every chunk
 * held, and COMMIT may be tried again. The caller checks beforehand that
 * every chunk is done. One thread (the owning control connection).
 */
enum pf_status session_commit(struct session *s,
    const uint8_t want[PF_SHA256_LEN], const struct policy *p);

/*
 * Ends s in state (FAILED, CANCELLED or EXPIRED) for reason why, and
 * removes its staging metadata at once, so a crash cannot bring it back.
 * False if it was not receiving (then nothing changes). Any thread.
 */
bool session_end(struct session *s, enum session_state state,
    enum pf_status why);

/*
 * After session_end: PF_OK if the end is durable (a power loss cannot
 * bring s back), else why not. Any thread.
 */
enum pf_status session_end_status(struct session *s);

/*
 * Makes control connection owner (a number unique to it) the session's
 * owner, with a new session key.
 */
void session_take(struct session *s, uint64_t owner,
    const uint8_t key[PF_SHA256_LEN]);

/* True if owner is still the session's owner. */
bool session_owned_by(struct session *s, uint64_t owner);

/*
 * Copies the session key into key (under the session's lock); false if
 * s has none yet (a copy of a stored session: zeros, never a key).
 */
bool session_get_key(struct session *s, uint8_t key[PF_SHA256_LEN]);

/* Counts a connection on s: data connections, or control with control. */
void session_attach(struct session *s, bool control);
void session_detach(struct session *s, bool control);

/* Notes activity now (the reaper spares s for another --staging-ttl). */
void session_touch(struct session *s);

/*
 * Counts n bytes of chunk data read for s, stored or not; that is
 * progress (see session_idle_ms).
 */
void session_count_bytes(struct session *s, uint64_t n);

/* Notes progress now: a control connection took s over. */
void session_note_progress(struct session *s);

/* Milliseconds since the last progress of s (any of its connections). */
uint64_t session_idle_ms(struct session *s);

/*
 * Bytes s holds reserved but not yet received: its size less the chunks
 * done; 0 once it left RECEIVING. Any thread.
 */
uint64_t session_reserved(struct session *s);

/*
 * True if the first bytes of chunk 0 at p (at least the declared head's
 * length) differ from the head declared at OPEN.
 */
bool session_head_differs(struct session *s, const void *p);

/* True if s is receiving, nobody works on it and it was idle since before. */
bool session_idle_since(struct session *s, time_t before);

/*
 * The chunks s holds as a new bitmap of nchunks / 8 + 1 bytes (bit i of
 * byte i / 8 for chunk i); NULL on ENOMEM.
 */
uint8_t *session_held_bitmap(struct session *s);

/*
 * The change generation of all sessions: it grows after every change a
 * copy (session_info) shows at chunk granularity: a session ready, a
 * state, an error, a chunk acknowledged, refused or sent again, a stream
 * joining or leaving; a session entering or leaving the live table or
 * the history (registry.c and history.c call session_changed). Bytes of
 * a chunk still arriving and the time of the last activity change
 * without it. Bumped after the change, so a reader who reads it before
 * copying never keeps an older copy under a newer number. Any thread.
 */
void session_changed(void);
uint64_t session_generation(void);

/* A copy of s for the gateway (see engine.h). Its strings are fixed once
 * s is ready. */
void session_info(struct session *s, struct engine_session_info *out);

/* The chunk map of s as a new string (ENGINE_CHUNK_*); NULL on ENOMEM. */
char *session_chunk_map(struct session *s);

/* Fixed once s is ready; borrowed strings live as long as s. */
/* A transfer's manifest (borrowed, lives as long as s), or NULL. */
const struct manifest *session_manifest(const struct session *s);

/* True if s's chunks are hashed in pieces (PFC2). */
bool session_pieces(const struct session *s);

/*
 * The spans (*n) s's chunks are hashed in pieces over (borrowed, as long
 * as s), or NULL if they are hashed whole (PFC1).
 */
const struct proto_span *session_spans(const struct session *s, size_t *n);

/* The files whole in the chunk h has just hashed keep their digests. */
void session_note_wholes(struct session *s, const struct chunkhash *h);
const char *session_id(const struct session *s);
const char *session_user(const struct session *s);
const char *session_name(const struct session *s);
/* Opened over tus (session_file's tus). */
bool session_tus(const struct session *s);
/* False while a tus upload's first bytes are not judged (no head yet). */
bool session_head_judged(const struct session *s);
/*
 * Sets the head of ready tus session s, once the policy judged it, and
 * rewrites its staging metadata (synced) so a restart judges it again.
 * The caller holds chunk 0 claimed. PF_ECANCELLED if s ended, PF_EIO,
 * PF_ENOSPC.
 */
enum pf_status session_set_head(struct session *s, const uint8_t *head,
    size_t n);
/* The name as sent (any bytes, *len of them; NULL until ready). */
const char *session_client_name(const struct session *s, size_t *len);
uint64_t session_size(const struct session *s);
uint32_t session_chunk_size(const struct session *s);
uint32_t session_nchunks(const struct session *s);
/* The receipt as hex; "" until s is complete. */
const char *session_receipt(const struct session *s);

/* Changing: read atomically. */
enum session_state session_state(struct session *s);
bool session_ready(struct session *s);
/* Why s ended; PF_OK while it runs or if it completed. */
enum pf_status session_error(struct session *s);
uint32_t session_chunks_acked(struct session *s);
uint32_t session_chunks_nacked(struct session *s);
uint32_t session_chunks_duplicate(struct session *s);
uint64_t session_bytes_received(struct session *s);

/*
 * For uploads that send no receipt (the gateway's, gwupload.c): the
 * bytes held from the start of the file on, up to the first chunk not
 * done; and session_commit with the receipt of the chunks held.
 */
uint64_t session_held_prefix(struct session *s);
/* n bytes at off of the staging file of ready s: storage_staging_read. */
enum pf_status session_read_staged(struct session *s, uint64_t off, void *p,
    size_t n);
enum pf_status session_commit_held(struct session *s);

#endif
