/* fs.h - the filesystem: state shared by the FUSE handlers, and the handler table. */
#ifndef IPFSFS_FS_H
#define IPFSFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "node.h"
#include "writer.h"

struct fs_config {
    size_t cache_bytes;   /* chunk cache budget */
    size_t dircache_bytes;
    size_t readahead_bytes;
    size_t chunk_size;
    unsigned fetch_workers;
    unsigned timeout_ms;      /* --timeout: the longest a read waits for its bytes */
    /* With a fallback (--api and --gateway), content the node cannot give within --timeout
     * is asked of the gateways, within --timeout again: a read waits twice --timeout (0: as
     * timeout_ms). */
    unsigned read_timeout_ms;
    double immutable_timeout; /* entry/attr timeout for content under a CID (s) */
    double root_timeout;      /* for the mutable root */
    const char *mfs_root;     /* MFS directory shown as the mount root */
    /* The IPNS namespace (--ipns): a name that now points to other content is a new inode,
     * so files opened before keep reading what they opened (their pages too). */
    bool names_follow_content;
    /* Every change is refused (--ipns): names are shown without write permission, as the
     * content under a CID is. */
    bool read_only;
    /* Others may enter the mount (-o allow_other or allow_root): the group's and others'
     * write bits of a create are then kept (see create_mode in fs.c). */
    bool shared;
    /* The names go to a node (--api): Kubo takes them into Go strings and answers them in JSON,
     * where bytes that are not UTF-8 come back as U+FFFD (another name), so such a name is
     * refused (EILSEQ) rather than kept as another name on the node (it stopped every later
     * push). */
    bool utf8_names;
    /* Where names' change times are kept across mounts (in the store's folder), or NULL: names
     * that store no time show when their content last changed, also after a remount. */
    const char *times_path;
    struct writer_config writer;
};

struct fs;

/* Takes ownership of node. */
int fs_new(struct node *node, const struct fs_config *cfg, struct fs **out);
/* Start the threads (fetch workers). Call after daemonizing: fork keeps only one thread. */
int fs_start(struct fs *fs);
void fs_free(struct fs *fs);

extern const struct fuse_lowlevel_ops fs_ops;

/* Statistics text (what user.ipfsfs.stats returns). Returns its length like snprintf. */
int fs_stats(struct fs *fs, char *buf, size_t len);

#endif
