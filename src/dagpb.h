/* dagpb.h - decode dag-pb blocks and the UnixFS data inside them.
 *
 * Used where the RPC answers are ambiguous (symlinks on nodes whose ls has no Type 4) and by
 * any code that walks blocks itself. Decoding is zero-copy: the returned pointers point into
 * the block buffer given, which must outlive the result. Pure logic, thread-safe.
 */
#ifndef IPFSFS_DAGPB_H
#define IPFSFS_DAGPB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum unixfs_type {
    UNIXFS_RAW = 0,
    UNIXFS_DIRECTORY = 1,
    UNIXFS_FILE = 2,
    UNIXFS_METADATA = 3,
    UNIXFS_SYMLINK = 4,
    UNIXFS_HAMT_SHARD = 5,
};

/* 32 bytes: a 4 MiB block holds at most 512k links (8 bytes each at least: a Hash shorter
 * than any CID, 4 bytes, is refused), so their array stays under 16 MiB. */
struct dagpb_link {
    const uint8_t *hash; /* binary CID (not validated: at least 4 bytes) */
    const char *name;    /* NOT NUL-terminated; may contain any bytes */
    uint64_t tsize;
    uint32_t hash_len;
    uint32_t name_len : 30;
    uint32_t has_name : 1;
    uint32_t has_tsize : 1;
};

struct unixfs_data {
    enum unixfs_type type;
    const uint8_t *data; /* Data field (file bytes, symlink target, HAMT bitfield) */
    size_t data_len;
    bool has_data;
    uint64_t filesize;
    bool has_filesize;
    uint64_t hash_type; /* HAMT */
    uint64_t fanout;    /* HAMT */
    bool has_fanout;
    uint32_t mode;      /* UnixFS 1.5, only if has_mode */
    bool has_mode;
    int64_t mtime_sec;  /* UnixFS 1.5, only if has_mtime */
    uint32_t mtime_nsec;
    bool has_mtime;
    size_t nblocksizes; /* number of blocksizes entries */
    uint64_t blocksizes_sum; /* their sum (UINT64_MAX if it overflows) */
};

struct dagpb_node {
    struct dagpb_link *links; /* one malloc'd array of exactly nlinks, free with dagpb_node_free */
    size_t nlinks;
    const uint8_t *data;      /* PBNode.Data (the UnixFS protobuf), or NULL */
    size_t data_len;
    bool has_data;
};

/* Decode a dag-pb block. Returns 0, -EINVAL for malformed input, -ENOMEM. Strict: unknown
 * fields, wrong wire types, lengths past the end, duplicate Data fields and link Hashes shorter
 * than any CID (4 bytes) are errors; blocks over 4 GiB are refused. One validating pass counts
 * the links, a second fills one array of exactly that many: memory is 32 bytes per link. */
int dagpb_decode(const uint8_t *block, size_t len, struct dagpb_node *out);
void dagpb_node_free(struct dagpb_node *n);

/* Decode the UnixFS Data protobuf (PBNode.Data). Returns 0 or -EINVAL. blocksizes are counted,
 * not stored (use unixfs_blocksize to read entry i). Unknown fields with a valid wire type are
 * skipped; Type is required and must be 0..5. unixfs_blocksize returns 0, -ERANGE if i is not
 * below nblocksizes, or -EINVAL if data does not decode. */
int unixfs_decode(const uint8_t *data, size_t len, struct unixfs_data *out);
int unixfs_blocksize(const uint8_t *data, size_t len, size_t i, uint64_t *out);

/* The blocksizes in order, in one pass over data (unixfs_blocksize rescans from the start each
 * time: walking every index with it is quadratic, and a 4 MiB block holds ~2M blocksizes).
 * next returns 1 with the next one in *out, 0 at the end, -EINVAL if data does not decode. */
struct unixfs_bs_iter {
    const uint8_t *p, *end;   /* the UnixFS message, from the next field on */
    const uint8_t *pp, *pend; /* the rest of a packed blocksizes field */
};
void unixfs_bs_begin(struct unixfs_bs_iter *it, const uint8_t *data, size_t len);
int unixfs_bs_next(struct unixfs_bs_iter *it, uint64_t *out);

/* What a single-block dag-pb UnixFS child of `size` bytes must be, judged from its block size
 * (the parent's link Tsize): UNIXFS_FILE, UNIXFS_SYMLINK, or -1 when neither layout fits (more
 * blocks, stored metadata...). Lets a listing tell symlinks from small files without fetching
 * every child, on nodes whose ls does not say (js-ipfs). */
int unixfs_guess_small(uint64_t tsize, uint64_t size);

#endif
