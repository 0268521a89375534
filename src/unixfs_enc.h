/* unixfs_enc.h - encode dag-pb blocks and the UnixFS data inside them, byte-exact with Kubo.
 *
 * The inverse of dagpb.h. Canonical dag-pb: PBNode Links (field 2) first, then Data (field 1);
 * inside a PBLink Hash, Name, Tsize, every one always written (Kubo writes an empty Name).
 * UnixFS fields go out in field-number order, blocksizes unpacked (proto2), as go-unixfs does.
 * Pure logic, thread-safe.
 */
#ifndef IPFSFS_UNIXFS_ENC_H
#define IPFSFS_UNIXFS_ENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cid.h"
#include "dagpb.h"

/* A growable byte buffer. Zero-initialise; free with bytebuf_free. */
struct bytebuf {
    uint8_t *p;
    size_t len, cap;
};

void bytebuf_free(struct bytebuf *b);
int bytebuf_put(struct bytebuf *b, const void *data, size_t len);

/* The UnixFS Data message to write. Optional fields only go out when their has_ flag is set. */
struct unixfs_fields {
    enum unixfs_type type;
    const uint8_t *data;
    size_t data_len;
    bool has_data;
    uint64_t filesize;
    bool has_filesize;
    const uint64_t *blocksizes;
    size_t nblocksizes;
    uint64_t hash_type; /* HAMT: 0x22 murmur3-x64-64 */
    bool has_hash_type;
    uint64_t fanout;
    bool has_fanout;
    uint32_t mode; /* permission bits (07777) */
    bool has_mode;
    int64_t mtime_sec;
    uint32_t mtime_nsec; /* written only when not 0 */
    bool has_mtime;
};

struct pb_link_out {
    const uint8_t *hash; /* binary CID */
    size_t hash_len;
    const char *name;
    size_t name_len;
    uint64_t tsize;
};

/* Append the UnixFS Data message to out. Returns 0 or -ENOMEM. */
int unixfs_encode(const struct unixfs_fields *f, struct bytebuf *out);

/* Append a PBNode to out. Links are written in the order given (sort directories first).
 * Returns 0 or -ENOMEM. */
int dagpb_encode(const struct pb_link_out *links, size_t nlinks, const uint8_t *data,
                 size_t data_len, bool has_data, struct bytebuf *out);

/* Fill f from a decoded UnixFS message (data/len: the PBNode Data it was decoded from), for
 * re-encoding with a change. *blocksizes receives a malloc'd array (or NULL): free it after
 * use. Returns 0, -ENOMEM or -EINVAL. */
int unixfs_fields_from(const struct unixfs_data *u, const uint8_t *data, size_t len,
                       struct unixfs_fields *f, uint64_t **blocksizes);

/* The CID of a block: sha2-256, version 0 (dag-pb only) or 1. Returns 0, -EINVAL or -EIO. */
int block_cid(unsigned version, uint64_t codec, const uint8_t *block, size_t len, struct cid *out);

/* Cumulative DAG size of a block (Tsize for a link to it): its length plus its links' Tsize
 * for dag-pb, its length for anything else. Returns 0 or -EINVAL (malformed dag-pb). */
int block_tsize(uint64_t codec, const uint8_t *block, size_t len, uint64_t *out);

#endif
