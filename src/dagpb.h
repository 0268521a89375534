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

struct dagpb_link {
    const uint8_t *hash; /* binary CID */
    size_t hash_len;
    const char *name;    /* NOT NUL-terminated; may contain any bytes */
    size_t name_len;
    bool has_name;
    uint64_t tsize;
    bool has_tsize;
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
    struct dagpb_link *links; /* malloc'd array, free with dagpb_node_free */
    size_t nlinks;
    const uint8_t *data;      /* PBNode.Data (the UnixFS protobuf), or NULL */
    size_t data_len;
    bool has_data;
};

/* Decode a dag-pb block. Returns 0, -EINVAL for malformed input, -ENOMEM. Strict: unknown
 * fields, wrong wire types, lengths past the end and duplicate Data fields are errors. */
int dagpb_decode(const uint8_t *block, size_t len, struct dagpb_node *out);
void dagpb_node_free(struct dagpb_node *n);

/* Decode the UnixFS Data protobuf (PBNode.Data). Returns 0 or -EINVAL. blocksizes are counted,
 * not stored (use unixfs_blocksize to read entry i). Unknown fields with a valid wire type are
 * skipped; Type is required and must be 0..5. unixfs_blocksize returns 0, -ERANGE if i is not
 * below nblocksizes, or -EINVAL if data does not decode. */
int unixfs_decode(const uint8_t *data, size_t len, struct unixfs_data *out);
int unixfs_blocksize(const uint8_t *data, size_t len, size_t i, uint64_t *out);

/* What a single-block dag-pb UnixFS child of `size` bytes must be, judged from its block size
 * (the parent's link Tsize): UNIXFS_FILE, UNIXFS_SYMLINK, or -1 when neither layout fits (more
 * blocks, stored metadata...). Lets a listing tell symlinks from small files without fetching
 * every child, on nodes whose ls does not say (js-ipfs). */
int unixfs_guess_small(uint64_t tsize, uint64_t size);

#endif
