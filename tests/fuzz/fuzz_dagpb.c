/* fuzz_dagpb.c - dag-pb blocks and the UnixFS data inside them: blocks come from the node,
 * which may be hostile, and are decoded by stat and by directory listings.
 *
 * Built twice (run-fuzzers.sh): fuzz_dagpb decodes the input as a dag-pb block and then its
 * Data as UnixFS; fuzz_unixfs (-DFUZZ_UNIXFS_ONLY) decodes the input as UnixFS directly.
 * Properties: every pointer returned lies inside the input; a link hash that parses as a
 * binary CID re-encodes to the same bytes; unixfs_blocksize answers for every index below
 * nblocksizes and -ERANGE at nblocksizes, walked the way node_rpc.c sums a file's size;
 * decoding is deterministic; unixfs_guess_small never claims both kinds.
 */
#include "config.h"

#include "cid.h"
#include "dagpb.h"
#include "fuzz.h"

#include <errno.h>
#include <string.h>

static void check_inside(const void *p, size_t n, const uint8_t *base, size_t size,
                         const char *what)
{
    if (n == 0)
        return;
    const uint8_t *q = p;
    FUZZ_CHECK(q >= base && q + n <= base + size, "%s points outside the block", what);
    fuzz_touch(q, n);
}

static void check_unixfs(const uint8_t *d, size_t n, const uint8_t *base, size_t size)
{
    struct unixfs_data u, u2;
    int rc = unixfs_decode(d, n, &u);
    if (rc < 0) {
        FUZZ_CHECK(rc == -EINVAL, "unixfs rc %d", rc);
        return;
    }
    FUZZ_CHECK(unixfs_decode(d, n, &u2) == 0 && u.type == u2.type && u.data == u2.data &&
                   u.data_len == u2.data_len && u.filesize == u2.filesize &&
                   u.nblocksizes == u2.nblocksizes && u.mode == u2.mode &&
                   u.mtime_sec == u2.mtime_sec && u.fanout == u2.fanout,
               "unixfs decoding is not deterministic");
    FUZZ_CHECK(u.type <= UNIXFS_HAMT_SHARD, "type %d", (int)u.type);
    FUZZ_CHECK(!u.has_mtime || u.mtime_nsec <= 999999999u, "nsec %u", u.mtime_nsec);
    if (u.has_data)
        check_inside(u.data, u.data_len, base, size, "UnixFS Data");
    /* node_rpc.c's unixfs_total: one unixfs_blocksize per index. Bounded here (the walk is
     * quadratic; see tests/README-hardening.md). */
    size_t walk = u.nblocksizes < 512 ? u.nblocksizes : 512;
    uint64_t v;
    for (size_t i = 0; i < walk; i++)
        FUZZ_CHECK(unixfs_blocksize(d, n, i, &v) == 0, "blocksize %zu of %zu fails", i,
                   u.nblocksizes);
    FUZZ_CHECK(unixfs_blocksize(d, n, u.nblocksizes, &v) == -ERANGE, "index past the end");
    int g = unixfs_guess_small(u.has_filesize ? u.filesize : u.data_len, u.data_len);
    FUZZ_CHECK(g == -1 || g == UNIXFS_FILE || g == UNIXFS_SYMLINK, "guess %d", g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy so reads past the end are caught. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);

#ifdef FUZZ_UNIXFS_ONLY
    check_unixfs(buf, size, buf, size);
#else
    struct dagpb_node pb;
    int rc = dagpb_decode(buf, size, &pb);
    if (rc == 0) {
        if (pb.has_data) {
            check_inside(pb.data, pb.data_len, buf, size, "PBNode.Data");
            check_unixfs(pb.data, pb.data_len, buf, size);
        }
        for (size_t i = 0; i < pb.nlinks; i++) {
            const struct dagpb_link *l = &pb.links[i];
            FUZZ_CHECK(l->hash != NULL || l->hash_len == 0, "link %zu without hash", i);
            check_inside(l->hash, l->hash_len, buf, size, "link Hash");
            if (l->has_name)
                check_inside(l->name, l->name_len, buf, size, "link Name");
            struct cid c;
            if (cid_from_bytes(l->hash, l->hash_len, &c) == 0) {
                uint8_t bin[CID_MAX_MH + 16];
                int b = cid_to_bytes(&c, bin, sizeof bin);
                FUZZ_CHECK(b > 0 && (size_t)b == l->hash_len &&
                               memcmp(bin, l->hash, l->hash_len) == 0,
                           "link %zu: CID bytes do not round-trip", i);
            }
            if (l->has_tsize) {
                int g = unixfs_guess_small(l->tsize, l->tsize / 2);
                FUZZ_CHECK(g == -1 || g == UNIXFS_FILE || g == UNIXFS_SYMLINK, "guess %d", g);
            }
        }
        dagpb_node_free(&pb);
        FUZZ_CHECK(pb.links == NULL && pb.nlinks == 0, "free left links");
    } else {
        FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM, "dagpb rc %d", rc);
        FUZZ_CHECK(pb.links == NULL && pb.nlinks == 0, "failure left links");
    }
    /* Also the whole block as UnixFS: a node may hand us either. */
    check_unixfs(buf, size, buf, size);
#endif
    free(buf);
    return 0;
}
