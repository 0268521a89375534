/* options.h - command line and -o options: one table feeds parsing, --help and the man page
 * check. */
#ifndef IPFSFS_OPTIONS_H
#define IPFSFS_OPTIONS_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>

/* At most this many --gateway URLs (gateway.h's GW_MAX). */
#define OPTIONS_MAX_GATEWAYS 16

struct options {
    char *api;        /* multiaddr, or NULL: discover */
    unsigned timeout; /* seconds (parsed from timeout_arg) */
    char *timeout_arg;
    char *cache_size;
    char *dir_cache;
    char *readahead;
    char *log_level;
    int stats;        /* --stats: print a running mount's statistics */
    char *mfs_root;   /* MFS directory shown at the mount root */
    char *spool_dir;
    const char *spool_dir_from; /* where spool_dir came from: "--spool-dir", "$TMPDIR", ... */
    int cid_version;  /* -1: node default (parsed from cid_version_arg) */
    char *cid_version_arg;
    int raw_leaves;   /* -1: node default */
    char *chunker;
    int no_pin;
    unsigned file_max_links; /* links per file node: the node's Import.UnixFSFileMaxLinks
                              * (set by main.c; 0: 174, Kubo's default) */
    char *api_auth_file; /* file holding the API.Authorizations secret */
    char *cacert;        /* CA bundle for https */
    char *store;         /* embedded block store directory (no node) */
    char *proxy;         /* proxy URL for the RPC connection; NULL: none (never the environment's) */
    int api_auth_insecure; /* send the API secret over plain http to a non-loopback address */
    int write_through;   /* names live on the node: close(2) waits for it (no local store) */
    int ipns;            /* --ipns: mount the IPNS namespace, read-only */
    unsigned unmount_wait; /* seconds unmount waits for the node to have every change */
    char *unmount_wait_arg;
    char *sync_ahead;      /* --sync-ahead: auto, on or off (NULL: auto) */
    int sync_ahead_mode;   /* parsed: -1 auto, 0 off, 1 on */
    char *store_size;      /* --store-size */
    char *gateways[OPTIONS_MAX_GATEWAYS]; /* --gateway URLs, in order (n_gateways of them) */
    size_t n_gateways;
    char *cluster;      /* --cluster: the cluster's REST API URL, "off", or NULL (detect) */
    char *cluster_auth_file; /* file holding the cluster REST API's credentials */
    char *replication;  /* --replication=MIN[:MAX] */
    int replication_wait; /* fsync waits for the cluster's minimum replication */
    char *publish;      /* --publish=KEY: publish the names' root under the node's key KEY */
    int after_gateway;  /* parsing: the last option was gateway= (see keep_nonopt) */
    int nonopts;        /* plain arguments seen: [SOURCE] MOUNTPOINT */
    int shared;         /* -o allow_other or allow_root: others may enter the mount */
    char *first_nonopt;
    /* parsed values */
    size_t cache_bytes, dircache_bytes, readahead_bytes, store_bytes;
    int rep_min, rep_max; /* --replication (0: the cluster's defaults; -1: every peer) */
};

/* Parse our options out of args (the rest stays for libfuse). Returns 0 or -1 after printing a
 * message to stderr. */
int options_parse(struct fuse_args *args, struct options *o);
void options_free(struct options *o);

/* Whether o->spool_dir takes files as the writer makes them (writer.c: an unnamed file, else a
 * named one). Returns 0, or -1 after a message to stderr. Kept out of options_parse: --help,
 * --version and --stats need no spool. */
int options_check_spool_dir(const struct options *o);
void options_print_help(const char *progname);

/* "256M", "64MiB", "1G", "4096" -> bytes. Returns 0 or -EINVAL. */
int parse_size(const char *s, size_t *out);

/* A whole decimal number, the whole of s ("-5", "30"; not "5s", "1.5", " 5", "+5", ""), from
 * min to max. Returns 0, -EINVAL (not such a number) or -ERANGE (a number out of range). */
int parse_number(const char *s, long min, long max, long *out);

/* API address discovery: explicit, then $IPFS_PATH/api (default ~/.ipfs/api), then Kubo's
 * default. Returns a malloc'd multiaddr and writes where it came from into *source. */
char *discover_api(const char *explicit_api, const char **source);

/* A secret: from file if given, else from the environment variable env (IPFSFS_API_AUTH,
 * IPFSFS_CLUSTER_AUTH); NULL if none (or unreadable). The variable goes either way
 * (drop_secret_env), so that /proc/PID/environ no longer shows it. */
char *read_secret(const char *file, const char *env);
/* Wipe the value of environment variable env where the process started with it (what
 * /proc/PID/environ shows), and unset it. read_secret does this for its env. */
void drop_secret_env(const char *env);

#endif
