/* rpcjson.h - parse Kubo's JSON replies. Pure, no I/O, so the unit tests feed it replies
 * recorded from a real Kubo (tests/fixtures/kubo, tests/record-fixtures.sh). */
#ifndef IPFSFS_RPCJSON_H
#define IPFSFS_RPCJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"

/* The oldest Kubo served: 0.40 and earlier lost the content links of multi-block files on
 * files/chmod and files/touch (boxo < 0.38). */
#define KUBO_MIN_MAJOR 0
#define KUBO_MIN_MINOR 41
#define KUBO_MIN_PATCH 0
#define KUBO_MIN_STR "0.41.0"

/* /api/v0/version. version keeps only printable characters of the node's string. */
struct node_version {
    char version[64];
    bool is_kubo;         /* Kubo / go-ipfs: has "Golang", not js-ipfs's "ipfs-core" */
    bool parsed;          /* version was MAJOR.MINOR.PATCH[-suffix]: the numbers are set */
    unsigned major, minor, patch;
};
int rpcjson_version(const char *body, size_t len, struct node_version *out);

/* The "ID" of an /api/v0/id answer (a peer ID: letters and digits only) into id. 0, or -EIO
 * when there is none of that form (or it does not fit in idlen). */
int rpcjson_id(const char *body, size_t len, char *id, size_t idlen);

/* 0 if the node is a Kubo we serve; else -EPROTONOSUPPORT and why (for the user) in why. */
int rpcjson_version_check(const struct node_version *v, char *why, size_t whylen);

/* Parse one ls reply object ({"Objects":[{"Hash":..,"Links":[...]}]}), whole or one stream
 * line, calling fn for every valid link. Links with bad names or CIDs are skipped and counted
 * in *skipped (and logged). Type 0 (a child Kubo did not fetch) is NODE_UNKNOWN, except raw
 * CIDs, which are files. Returns 0, -EIO for malformed JSON, or fn's error. */
int rpcjson_ls(const char *body, size_t len, node_entry_fn fn, void *ud, unsigned *skipped);

/* files/ls?long=true: {"Entries":[{"Name","Type":0 file|1 dir,"Size","Hash"}]} or
 * {"Entries":null}. Kubo has no streamed form, so the reader splits the array as bytes come
 * and hands every entry on at once: memory is one entry, not the reply. Small dag-pb files come
 * back NODE_UNKNOWN (MFS lists symlinks as files). At most max_entries entries (-EFBIG past
 * that); an entry larger than 64 KiB or malformed JSON is -EIO. */
struct files_ls_reader {
    int state;
    int depth;        /* nesting inside the entry being collected */
    bool in_str, esc; /* inside a JSON string of that entry; after a backslash */
    char key[16];
    size_t keylen;
    char *obj; /* the entry being collected */
    size_t len, cap;
    uint64_t entries, max_entries;
    unsigned skipped;
    node_entry_fn fn;
    void *ud;
};
void files_ls_init(struct files_ls_reader *r, uint64_t max_entries, node_entry_fn fn, void *ud);
int files_ls_feed(struct files_ls_reader *r, const char *data, size_t len);
int files_ls_finish(struct files_ls_reader *r); /* -EIO if the reply ended early */
void files_ls_free(struct files_ls_reader *r);
/* The same over a whole reply. */
int rpcjson_files_ls(const char *body, size_t len, node_entry_fn fn, void *ud, unsigned *skipped);

/* ls replies, whole ({"Objects":[{"Hash":..,"Links":[...]}]}, what ls without stream=true
 * sends once it has every child) or streamed (one such object a line), split as bytes come:
 * every object of an Objects[].Links[] array goes through rpcjson_ls's checks to fn at once, so
 * memory is one link, not the reply. A link larger than 64 KiB, a nesting deeper than 16, or
 * brackets that do not match are -EIO; so is a reply that ends inside a value, or has no
 * top-level object with an Objects array (ls_reader_finish). */
#define LS_READER_DEPTH 16
struct ls_reader {
    unsigned depth;                      /* containers open */
    char open[LS_READER_DEPTH];          /* '{' or '[' for each */
    unsigned char role[LS_READER_DEPTH]; /* what each is (rpcjson.c) */
    unsigned char next_role;             /* of the value after the key just read */
    bool in_str, esc, is_key, want_key;  /* string state; a key may start (in an object) */
    bool at_value;                       /* after a key's ':', before its value */
    char key[16];
    size_t keylen;
    unsigned tops, objects; /* top-level objects; their Objects arrays */
    unsigned link_depth;    /* depth inside the link being collected; 0: none */
    char *obj;              /* the link being collected */
    size_t len, cap;
    unsigned skipped;
    node_entry_fn fn;
    void *ud;
};
void ls_reader_init(struct ls_reader *r, node_entry_fn fn, void *ud);
int ls_reader_feed(struct ls_reader *r, const char *data, size_t len);
int ls_reader_finish(struct ls_reader *r);
void ls_reader_free(struct ls_reader *r);

/* An RFC 3339 time (Go's time.Time in JSON: "2001-09-09T01:46:40.5Z", any offset) as seconds
 * since the epoch and nanoseconds. 0 or -EINVAL. */
int rpcjson_rfc3339(const char *t, int64_t *sec, uint32_t *nsec);

/* files/stat: {"Hash","Size","Type":"file"|"directory","Mode","Mtime","MtimeNsecs"}. A Mode
 * with Go's symlink bit (octal 1000000000) makes it NODE_SYMLINK (target unknown: read the
 * block). */
int rpcjson_files_stat(const char *body, size_t len, struct node_stat *out, struct cid *cid);

/* The root of an add reply: the Hash of the last line that has one. */
int rpcjson_add_result(const char *body, size_t len, struct cid *out);

/* repo/stat?size-only=true: {"RepoSize","StorageMax",...}. */
int rpcjson_repo_stat(const char *body, size_t len, uint64_t *repo_size, uint64_t *storage_max);

/* files/rm failure body: one JSON string per path that failed ("/x: file does not exist").
 * Returns the errno of the first line that names one (ENOENT, EISDIR, ENOTEMPTY...), else
 * -EIO. */
int rpcjson_rm_error(const char *body, size_t len, char *msg, size_t msglen);

/* The node's Import settings (config?arg=Import: {"Key":"Import","Value":{...}}), as far as
 * they decide the CIDs an add makes there. A setting left null is the node's default. */
struct import_config {
    int cid_version;  /* Import.CidVersion; -1: not set */
    int raw_leaves;   /* Import.UnixFSRawLeaves; -1: not set */
    char chunker[64]; /* Import.UnixFSChunker; "": not set */
    unsigned file_max_links; /* Import.UnixFSFileMaxLinks; 0: not set */
    /* Import.UnixFSHAMTDirectorySizeEstimation is "block" (IPIP-499: the unixfs-v1-2025
     * profile): followed by the store, so not in differs */
    bool hamt_block;
    /* The first setting whose value changes every file's CID and that local imports do not
     * follow ("HashFunction=blake3"), else "" */
    char refused[160];
    /* Those that change only the CIDs of large directories (comma-separated "NAME=VALUE"),
     * else "" */
    char differs[400];
};
/* 0, or -EPROTO (not that answer; a message in why). Pure. */
int rpcjson_import_config(const char *body, size_t len, struct import_config *out, char *why,
                          size_t whylen);

/* Incremental NDJSON splitter for streamed replies: feed bytes, get complete lines. */
struct ndjson {
    char *buf;
    size_t len, cap, max_line;
};
typedef int (*ndjson_line_fn)(void *ud, const char *line, size_t len);
void ndjson_init(struct ndjson *nd, size_t max_line);
int ndjson_feed(struct ndjson *nd, const char *data, size_t len, ndjson_line_fn fn, void *ud);
int ndjson_finish(struct ndjson *nd, ndjson_line_fn fn, void *ud); /* last unterminated line */
void ndjson_free(struct ndjson *nd);

/* A number given as a JSON integer or a decimal string (Kubo's add Size). */
int rpcjson_u64(const void *json_value, uint64_t *out);

#endif
