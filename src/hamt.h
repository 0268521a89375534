/* hamt.h - the pure logic of UnixFS HAMT-sharded directories (UnixFS Type 5).
 *
 * A shard node's links are named by the 2-hex-digit (upper case) index of their bucket: "XY" alone
 * for a sub-shard, "XY" + entry name for an entry. The index at depth d is byte d of the
 * big-endian murmur3-x64-64 hash of the entry name (boxo's hamt with fanout 256, hashType 0x22).
 * Pure logic, thread-safe.
 */
#ifndef IPFSFS_HAMT_H
#define IPFSFS_HAMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cid.h"
#include "dagpb.h"

#define HAMT_HASH_MURMUR3 0x22
#define HAMT_FANOUT 256
#define HAMT_MAX_DEPTH 8 /* 64 hash bits, 8 per level */

/* The first 64 bits (h1) of MurmurHash3_x64_128 with seed 0, as Go's murmur3.Sum64. */
uint64_t hamt_murmur3_64(const void *key, size_t len);

/* Bucket index of name at depth (0-based), or -1 past the hash's 8 bytes. */
int hamt_index(const char *name, size_t len, unsigned depth);

/* Parse a shard link name: its bucket into *bucket and, for an entry, its name (the bytes after
 * the prefix) into *entry and *entry_len. Returns 0 for a sub-shard link (exactly two hex digits),
 * 1 for an entry, -EINVAL for a malformed name. */
int hamt_link_name(const char *name, size_t len, unsigned *bucket, const char **entry,
                   size_t *entry_len);

/* Name (len bytes) in the HAMT shard pb at depth: its link into *out. Returns 1 (the entry of
 * that name), 0 (the sub-shard on its path), -ENOENT (not there), or -EAGAIN (not a shard as
 * boxo writes them: more than HAMT_FANOUT links, a link name that does not parse, a bucket
 * linked twice; or past the hash's depth): the caller lists the directory instead. Pure. */
int hamt_shard_find(const struct dagpb_node *pb, const char *name, size_t len, unsigned depth,
                    const struct dagpb_link **out);

/* One directory entry to shard. */
struct hamt_entry {
    const char *name;
    size_t name_len;
    const uint8_t *cid; /* binary CID */
    size_t cid_len;
    uint64_t tsize; /* the entry's cumulative DAG size (its link's Tsize) */
};

/* Stores one encoded shard block and returns its CID (dag-pb, CID version of the directory). */
typedef int (*hamt_put_fn)(void *ud, const uint8_t *block, size_t len, struct cid *out);

/* Build the canonical HAMT over entries (names unique; the array is reordered): a bucket with
 * one entry holds it, a bucket with more becomes a sub-shard, as boxo and js-ipfs build it.
 * The root shard carries the directory's mode/mtime when has_mode/has_mtime. Every shard block
 * goes to put, children first. Returns 0 (root in *out, cumulative size in *tsize) or -errno
 * (-EIO when two names share all 64 hash bits). */
int hamt_build(struct hamt_entry *entries, size_t n, bool has_mode, uint32_t mode, bool has_mtime,
               int64_t mtime_sec, uint32_t mtime_nsec, hamt_put_fn put, void *ud, struct cid *out,
               uint64_t *tsize);

/* Reads a shard block into *block (malloc'd: the caller frees it). */
typedef int (*hamt_get_fn)(void *ud, const struct cid *c, uint8_t **block, size_t *len);

#define HAMT_REBUILD 1 /* hamt_set: this HAMT is not one it edits; rebuild it whole */

/* Set name to the binary CID cid (NULL: remove name) in the HAMT whose root shard is the
 * decoded block root (u: its UnixFS data), reading only the shards on name's path (get) and
 * putting the new ones (put; both get ud). The result is the HAMT hamt_build gives for the new
 * set of names, with the root's mode and mtime kept; the caller decides whether the directory
 * should stay a HAMT (*change: the estimate of the entries added, less that of those removed:
 * hamt_entry_est with block_est). Returns 0 (new root in *out, its cumulative size in *out_tsize),
 * -ENOENT (removing a name that is not there), HAMT_REBUILD when a shard on the path is not
 * as hamt_build writes them (another fanout or hash, links out of bucket order, lower-case
 * bucket names, a malformed block), or -errno. */
int hamt_set(const struct dagpb_node *root, const struct unixfs_data *u, const char *name,
             size_t name_len, const uint8_t *cid, size_t cid_len, uint64_t tsize,
             hamt_get_fn get, hamt_put_fn put, void *ud, bool block_est, struct cid *out,
             uint64_t *out_tsize, int64_t *change);

/* An entry's share of a directory's size estimate, as boxo counts it for the HAMT threshold.
 * block_est false (Import.UnixFSHAMTDirectorySizeEstimation "links", the default): its name
 * and binary CID bytes. true ("block", IPIP-499, the unixfs-v1-2025 profile): the bytes its
 * link takes in a plain directory's dag-pb block (name, CID, Tsize, protobuf framing). Pure. */
uint64_t hamt_entry_est(bool block_est, size_t name_len, size_t cid_len, uint64_t tsize);

/* The bytes a plain directory's UnixFS Data field takes in its dag-pb block ("block" estimate:
 * Type, and mode and mtime when stored), as boxo's dataFieldSerializedSize counts them. Pure. */
uint64_t hamt_dir_data_est(bool has_mode, uint32_t mode, bool has_mtime, int64_t mtime_sec,
                           uint32_t mtime_nsec);

#endif
