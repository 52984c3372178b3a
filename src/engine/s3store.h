/* SPDX-License-Identifier: MIT */
/*
 * Upload sessions kept in an S3 bucket (docs/scale-out.md, "The S3
 * session store"): a session is a multipart upload, a chunk a part, and
 * everything a node must know lives under PREFIX.pf/s/<session>/, so any
 * node can serve any session. Knows nothing of the engine's sessions.
 */
#ifndef PF_S3STORE_H
#define PF_S3STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "s3.h"
#include "status.h"

#define S3STORE_MIN_CHUNK	(8u << 20)	/* parts >= 5 MiB, 2^n */
#define S3STORE_ID_MAX		65	/* a session id, NUL included */
#define S3STORE_USER_MAX	65
#define S3STORE_NAME_MAX	256
#define S3STORE_HEAD_MAX	512	/* the file's first bytes (OPEN) */
#define S3STORE_NODE_MAX	65
#define S3STORE_LEASE_S		60

/*
 * What a session is; its fields never change once created, but deleting,
 * set once for good when a DELETE of the finished session begins.
 */
struct s3store_record {
	char		id[S3STORE_ID_MAX];	/* [0-9A-Za-z-], 1..64 */
	char		user[S3STORE_USER_MAX];
	char		name[S3STORE_NAME_MAX];	/* no '/', not . or .. */
	uint64_t	size;
	uint32_t	chunk_size;
	uint8_t		head[S3STORE_HEAD_MAX];
	size_t		head_len;
	int64_t		created;		/* Unix seconds */
	char		upload[S3_ID_MAX];	/* set by s3store_create */
	bool		deleting;	/* a tombstone (s3store_delete) */
};

struct s3store_opts {
	const char	*node;		/* this node's name, for the commit
					   object and logs */
	unsigned	 lease_s;	/* a commit older than this may be
					   taken over (60) */
	unsigned	 wait_s;	/* longest wait for another node's
					   commit (lease_s * 3) */
	/* Test hook: called once the commit object is written, before the
	   upload is completed (NULL in production). */
	void		(*after_commit_object)(void *arg);
	void		*hook_arg;
};

/* Where a listed session stands. */
enum s3store_state {
	S3STORE_ONGOING,	/* taking chunks */
	S3STORE_COMMITTING,	/* a node writes its commit */
	S3STORE_FINISHED,	/* the object is in the bucket */
	S3STORE_CANCELLING,	/* a cancel is under way */
	S3STORE_DELETING	/* its DELETE began: the object goes */
};

struct s3store;

/*
 * One store handle for one thread (it holds one struct s3 and so one
 * connection). cfg and opts (and the strings they point to) are borrowed
 * and MUST outlive it. NULL on ENOMEM. MUST NOT be used by two threads at
 * once; any number of handles, in any processes, may share a bucket.
 */
struct s3store *s3store_open(const struct s3_config *cfg,
    const struct s3store_opts *opts);
void s3store_close(struct s3store *st);

/* The S3 client under st (borrowed), for its statistics and errors. */
struct s3 *s3store_s3(struct s3store *st);

/*
 * Creates session rec->id: a multipart upload for its object, then its
 * record (only if none exists). Fills rec->upload. Every error is
 * logged with the store's detail:
 *   PF_EBADFRAME  chunk size under S3STORE_MIN_CHUNK
 *   PF_ETOOLARGE  more than S3_PART_MAX chunks
 *   PF_EBADNAME   an id or name that cannot be a key
 *   PF_EBUSY      the session exists already (nothing changed)
 * or the store's status (s3.h).
 */
enum pf_status s3store_create(struct s3store *st, struct s3store_record *rec);

/*
 * Reads session id's record into rec: PF_ENOSESSION if there is none or
 * it is a tombstone (its DELETE began: to a resume, a JOIN, a COMMIT or
 * a download the session is gone). s3store_load_any reads a tombstone
 * too (rec->deleting set), for what finishes the DELETE.
 */
enum pf_status s3store_load(struct s3store *st, const char *id,
    struct s3store_record *rec);
enum pf_status s3store_load_any(struct s3store *st, const char *id,
    struct s3store_record *rec);

/* The number of chunks of rec (1 for an empty file). */
uint32_t s3store_nchunks(const struct s3store_record *rec);

/* The length chunk i of rec has (0 past the end). */
uint64_t s3store_chunk_len(const struct s3store_record *rec, uint32_t i);

/*
 * Stores chunk index of rec from p[0..n), whose digest (verified by the
 * caller; what the receipt is made of) is sha256: claims the index for
 * that digest, puts the part, records the digest. body is the plain
 * SHA-256 of the n bytes, which the store checks the part against, or
 * NULL if sha256 is that (the engine's chunk digests are not: they
 * cover the chunk's head too, see proto_chunk_digest_begin).
 * PF_OK once the store holds it (the durable ACK), also if the same
 * bytes were stored before. PF_ECHECKSUM if the index was claimed with
 * another digest (nothing is written), PF_EBADFRAME for an index or a
 * length that does not fit rec, PF_ECANCELLED if the session was
 * cancelled (or expired).
 */
enum pf_status s3store_put_chunk(struct s3store *st,
    const struct s3store_record *rec, uint32_t index, const void *p,
    size_t n, const uint8_t sha256[PF_SHA256_LEN],
    const uint8_t body[PF_SHA256_LEN]);

/*
 * The chunks the store holds, as bitmap (s3store_nchunks(rec) / 8 + 1
 * bytes, zeroed here; bit i of byte i / 8 for chunk i), from ListParts.
 */
enum pf_status s3store_have(struct s3store *st,
    const struct s3store_record *rec, uint8_t *bitmap);

/*
 * Completes rec's upload if receipt is right: PF_OK once the object is
 * in the bucket, whoever completed it (another node committing at once,
 * or a committer that died, taken over after opts->lease_s).
 * PF_EPROTO if a chunk is missing, PF_ECHECKSUM if the receipt is wrong
 * (nothing written either way), PF_ECANCELLED if the session was
 * cancelled, PF_ETIMEOUT if another node's commit neither ended nor
 * lapsed within opts->wait_s.
 */
enum pf_status s3store_commit(struct s3store *st,
    const struct s3store_record *rec,
    const uint8_t receipt[PF_SHA256_LEN]);

/*
 * Cancels rec's session for good: the cancel object, the upload aborted
 * (its parts freed), then every key under .pf/s/<id>/ deleted.
 * PF_EBUSY if a commit has begun.
 */
enum pf_status s3store_cancel(struct s3store *st,
    const struct s3store_record *rec);

/*
 * Deletes rec's finished session for good, crash-safely: its record is
 * first rewritten as a tombstone (rec->deleting), then the object goes,
 * then its claims, sums, key, commit and cancel, and the record last.
 * Stopped anywhere, the tombstone keeps the session unlisted and unknown
 * to load, and a call again (a DELETE, or s3store_expire) finishes.
 * PF_EBUSY if the session is not finished (ongoing or committing):
 * nothing changed. Else PF_OK or the store's status (logged).
 */
enum pf_status s3store_delete(struct s3store *st,
    const struct s3store_record *rec);

/*
 * Calls fn with the record and state of every session in the bucket,
 * in id order. fn returns false to stop (PF_ECANCELLED). A session whose
 * record is missing or unreadable (one being created or cancelled) is
 * left out; a tombstone comes as S3STORE_DELETING.
 */
typedef bool (*s3store_list_fn)(void *arg, const struct s3store_record *rec,
    enum s3store_state state);
enum pf_status s3store_list(struct s3store *st, s3store_list_fn fn,
    void *arg);

/* What one s3store_expire pass did. */
struct s3store_expired {
	unsigned	sessions;	/* idle sessions cancelled */
	unsigned	uploads;	/* uploads without a record aborted */
};

/*
 * Expires, at now (Unix seconds), what has been idle longer than ttl_s:
 * every ongoing session (or cancel left half done) whose last activity,
 * the newest LastModified of its keys under .pf/s/<id>/ (the record at
 * create, a claim as each chunk begins, its sum as it ends), is older is
 * cancelled as s3store_cancel does; a committing or finished session
 * never is (the cancel is refused once `commit` exists). A tombstone's
 * DELETE is finished at once (s3store_delete: each step may run twice).
 * Then every
 * multipart upload under PREFIX files/ started before now - ttl_s that
 * no record names (a node died between create and record) is aborted,
 * at most 1,000 a pass. LastModified is the store's clock: now should be
 * too (NTP), any skew adds to or takes from the ttl. One session's
 * failure does not stop the pass: the first error is returned at its
 * end. out gets the counts.
 */
enum pf_status s3store_expire(struct s3store *st, int64_t now,
    unsigned ttl_s, struct s3store_expired *out);

/*
 * The session key of rec's newest login (s3join.c), which checks a JOIN
 * on any node: put_key writes it (at OPEN and at each resume), get_key
 * reads it (PF_ENOSESSION if none: the session ended). The key is a
 * capability for that session's JOIN only; see docs/scale-out.md.
 */
enum pf_status s3store_put_key(struct s3store *st,
    const struct s3store_record *rec, const uint8_t key[PF_SHA256_LEN]);
enum pf_status s3store_get_key(struct s3store *st,
    const struct s3store_record *rec, uint8_t key[PF_SHA256_LEN]);

/*
 * The server key every node of the bucket shares (PREFIX.pf/key, 32
 * random bytes): read, or made by the first node (If-None-Match, so
 * nodes starting at once agree). What paraflowd derives from it (the
 * salts of users who do not exist, download links) is then the same on
 * every node. PF_EIO if the object is not a key.
 */
enum pf_status s3store_cluster_key(struct s3store *st,
    uint8_t key[PF_SHA256_LEN]);

/*
 * The receipt a finished session was completed with, from its commit
 * object, and in *when (if not NULL) the Unix time the committer wrote
 * it (0 if unsaid): PF_ENOSESSION if there is none, PF_EIO if it does
 * not hold one.
 */
enum pf_status s3store_receipt(struct s3store *st,
    const struct s3store_record *rec, uint8_t receipt[PF_SHA256_LEN],
    int64_t *when);

/* The finished object of rec: its size and ETag (S3_ETAG_MAX or NULL). */
enum pf_status s3store_head(struct s3store *st,
    const struct s3store_record *rec, uint64_t *size, char *etag);

/* Bytes [off, off + len) (len 0: to the end) of rec's object to sink. */
enum pf_status s3store_read(struct s3store *st,
    const struct s3store_record *rec, uint64_t off, uint64_t len,
    s3_sink_fn sink, void *arg);

/*
 * Pure helpers, exposed for the unit tests. s3store_key writes
 * PREFIX.pf/s/ID/WHAT (what "" for the session's own prefix) or, with
 * what NULL, the finished object's key PREFIX files/ID/NAME; false if it
 * does not fit n bytes or id or name is not one a key may hold.
 */
bool s3store_key(char *out, size_t n, const char *prefix,
    const struct s3store_record *rec, const char *what);
bool s3store_id_ok(const char *id);
bool s3store_name_ok(const char *name);

/*
 * Parses the last component of a sums key, "INDEX.HEX" (HEX 64 digits):
 * false for anything else.
 */
bool s3store_parse_sum(const char *leaf, uint32_t *index,
    uint8_t digest[PF_SHA256_LEN]);

/*
 * Sets chunk part - 1's bit in bitmap if part is a part of rec (1 ..
 * nchunks) whose size is that chunk's; false (nothing set) otherwise.
 */
bool s3store_mark_part(const struct s3store_record *rec, uint8_t *bitmap,
    unsigned part, uint64_t size);

/* The record as JSON text (a new string, free()) and back. */
char *s3store_record_encode(const struct s3store_record *rec);
enum pf_status s3store_record_decode(const char *p, size_t n,
    struct s3store_record *rec);

#endif
