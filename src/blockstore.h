/* blockstore.h - content-addressed blocks on local disk, verified on every read.
 *
 * Layout (Kubo's flatfs layout, so a Kubo user can find their way around):
 *   DIR/blocks/SHARDING        "/repo/flatfs/shard/v1/next-to-last/2"
 *   DIR/blocks/XY/KEY.data     one block; KEY = base32 (RFC 4648, upper case, no padding) of the
 *                              block's multihash, XY = the two characters before KEY's last one.
 * Blocks are keyed by multihash, not by CID: a raw and a dag-pb CID over the same bytes share one
 * file, as in Kubo. A put writes a temporary file ".tmp-*" in the shard directory and starts its
 * writeback; batches of them are then fdatasync'd, and only then renamed to their final names
 * (by a later put, every few dozen blocks, or by blockstore_sync(), which also fsyncs the
 * directories that changed; on ext4, xfs, btrfs and f2fs one syncfs(2) replaces a batch of
 * those calls, so it also flushes whatever else is dirty on that filesystem). So a final name only ever holds complete, durable bytes, the disk
 * writes while the importer hashes, and a pending block is already readable (from its temporary
 * file). A leftover temporary file (after a crash) is never read. Identity multihashes are not
 * stored: their bytes are the digest. Thread-safe: any number of concurrent puts and gets.
 * Private: directories are made 0700 and files 0400 (blocks) or 0600, whatever the umask, and
 * no path inside is followed through a symlink.
 */
#ifndef IPFSFS_BLOCKSTORE_H
#define IPFSFS_BLOCKSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cid.h"

/* Largest block we store or read: Kubo's chunker maximum is just under 2 MiB, plus headers. */
#define BLOCKSTORE_MAX_BLOCK (4u << 20)

struct blockstore;

struct blockstore_stats {
    uint64_t gets, get_bytes, puts, put_bytes, dedup, corrupt;
};

/* Open (creating DIR/blocks if needed). Returns 0 or -errno with a message in err. */
int blockstore_open(const char *dir, struct blockstore **out, char *err, size_t errlen);
void blockstore_close(struct blockstore *bs); /* syncs first */
/* Remove the temp files an earlier process left in the shard directories (a crash, kill -9).
 * Only while no other process uses the store: node_store holds DIR/lock when it calls this.
 * Returns how many were removed, or -errno. */
int blockstore_clean_tmp(struct blockstore *bs);

/* Store data under c, which the caller computed from data (block_cid). A block already
 * present (or pending) is not written again. The block is readable at once but durable only
 * after blockstore_sync. Returns 0 or -errno (-EINVAL: hash we cannot store). */
int blockstore_put(struct blockstore *bs, const struct cid *c, const uint8_t *data, size_t len);

/* The mode of a block file put by blockstore_put_cache (others are 0400): the only files
 * blockstore_evict removes. */
#define BLOCKSTORE_CACHE_MODE 0500

/* Store a copy of a block that can be had again (fetched from a gateway): written and renamed
 * to its final name at once, never fsynced (no writeback started, no flush), and not young
 * (blockstore_sweep and blockstore_evict may take it at once). After a crash its file may
 * hold less than the block: blockstore_get then finds it corrupt (-EIO), and the caller
 * fetches it again. Returns 1 (written), 0 (there already) or -errno. */
int blockstore_put_cache(struct blockstore *bs, const struct cid *c, const uint8_t *data,
                         size_t len);

/* Read the block for c into a malloc'd buffer, verified against c's hash.
 * Returns 0, -ENOENT (not in the store), -EIO (corrupt: logged with the CID; or unreadable),
 * -ENOMEM. */
int blockstore_get(struct blockstore *bs, const struct cid *c, uint8_t **data, size_t *len);

/* Whether the block for c is present (not verified). */
bool blockstore_has(struct blockstore *bs, const struct cid *c);

/* Make every put so far, by any thread, durable under its final name: fdatasync the pending
 * temporary files, rename them, fsync the shard directories that gained entries. Returns 0 or
 * -errno; a block whose fdatasync failed is lost, and every sync fails (-EIO) until it is put
 * again. */
int blockstore_sync(struct blockstore *bs);

/* The path of c's block file (for tests and tools). Returns 0 or -ENOSPC/-EINVAL. */
int blockstore_path(const struct blockstore *bs, const struct cid *c, char *buf, size_t len);

/* Disk used by the block files under their final names (allocated bytes), and how many. */
int blockstore_usage(struct blockstore *bs, uint64_t *bytes, uint64_t *nblocks);

/* Delete c's block file (a block that can be had again elsewhere: the caller's choice); later
 * gets are -ENOENT until it is put again. *freed: the bytes given back. 0 or -errno. */
int blockstore_remove(struct blockstore *bs, const struct cid *c, uint64_t *freed);

/* Delete c's block file only if it is a fetched copy (mode BLOCKSTORE_CACHE_MODE) whose bytes,
 * read again now, do not match c (cut short by a crash: such copies are never fsynced). 0 when
 * removed; -EEXIST when it reads right; -EPERM when it is no fetched copy; else -errno (it
 * could not be read: nothing is removed). */
int blockstore_drop_corrupt_cache(struct blockstore *bs, const struct cid *c, uint64_t *freed);

void blockstore_get_stats(struct blockstore *bs, struct blockstore_stats *out);
/* A count that moves with each removal of a block file (collection, eviction,
 * blockstore_remove), just before the unlink and again after it: while it has not moved since
 * a block file was seen (the count taken before looking), that file is still there. */
uint64_t blockstore_removals(struct blockstore *bs);

/* ---- for the collector (node_store.c) ----
 * A block's key: a 64-bit hash of its multihash (what its file is named by), never 0. */
uint64_t blockstore_key(const struct cid *c);

/* A set of keys (open addressing). Zeroed is empty. */
struct blockstore_keyset {
    uint64_t *v;
    size_t n, cap;
};
/* 1: added, 0: there already, -ENOMEM. */
int blockstore_keyset_add(struct blockstore_keyset *s, uint64_t key);
bool blockstore_keyset_has(const struct blockstore_keyset *s, uint64_t key);
void blockstore_keyset_free(struct blockstore_keyset *s);

/* Young blocks: every put (a new block or one already here) records its key before it looks
 * whether the block is here, in the current young set; blockstore_sweep never removes a young
 * block. blockstore_young_rotate starts a new set once the current one is min_age_ns old and
 * began min_age_ns / 2 before busy_since (CLOCK_MONOTONIC ns: the start of the caller's oldest
 * work under way, which may name blocks put a moment before it; UINT64_MAX: none), and drops
 * the one before it: a put stays young at least min_age_ns, and while such work runs. */
void blockstore_young_rotate(struct blockstore *bs, uint64_t min_age_ns, uint64_t busy_since);

/* Whether c's block (stored or pending) is a dag-pb block with no links: exactly one Data field
 * (read from its first bytes and its size, not verified). 1, 0 (it may have links, or is not
 * readable that way), or -ENOENT. */
int blockstore_pb_leaf(struct blockstore *bs, const struct cid *c);

struct blockstore_sweep_stats {
    uint64_t removed, removed_bytes, live, young, other;
};

/* Remove every block file whose key is neither in live nor young (checked under the lock
 * that puts take to record a young key, so a block put again during the sweep stays or is
 * written again). Only final names: pending blocks are young. Returns 0 or -errno (what was
 * removed before the error stays removed, which loses nothing: none of it was live). */
int blockstore_sweep(struct blockstore *bs, const struct blockstore_keyset *live,
                     struct blockstore_sweep_stats *out);

/* Bound a cache of blocks that can be had again: remove block files put by
 * blockstore_put_cache (mode BLOCKSTORE_CACHE_MODE) that are neither in keep nor young, least
 * recent first, until those left take at most target bytes (allocated).
 * Recency: rank(ud, key) when not 0 (larger: used more recently), above every block it does
 * not know, which go by their file's mtime. Returns 0 or -errno (what was removed stays
 * removed). */
struct blockstore_evict_stats {
    uint64_t removed, removed_bytes, kept, young;
    uint64_t left_bytes; /* what the block files take afterwards */
};
int blockstore_evict(struct blockstore *bs, const struct blockstore_keyset *keep,
                     uint64_t target, uint64_t (*rank)(void *ud, uint64_t key), void *ud,
                     struct blockstore_evict_stats *out);

#endif
