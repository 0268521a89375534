/* rpcjson.h - parse the node's JSON replies (Kubo and js-ipfs shapes). Pure, no I/O, so the
 * unit tests feed it recorded replies. */
#ifndef IPFSFS_RPCJSON_H
#define IPFSFS_RPCJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"

/* Node flavour, from /api/v0/version. */
struct node_version {
    char version[64];
    bool is_kubo; /* Kubo / go-ipfs (has "Golang"); otherwise js-ipfs or unknown */
};
int rpcjson_version(const char *body, size_t len, struct node_version *out);

/* Quirks of the node that change how replies are read. */
struct rpcjson_quirks {
    /* ls has no Type 4: small dag-pb "files" may be symlinks (js-ipfs). Such entries come back
     * as NODE_UNKNOWN so the caller stats them. */
    bool symlink_as_file;
};

/* Parse one ls reply object ({"Objects":[{"Hash":..,"Links":[...]}]}), whole or one stream
 * line, calling fn for every valid link. Links with bad names or CIDs are skipped and counted
 * in *skipped (and logged). Returns 0, -EIO for malformed JSON, or fn's error. */
int rpcjson_ls(const char *body, size_t len, const struct rpcjson_quirks *q, node_entry_fn fn,
               void *ud, unsigned *skipped);

/* files/ls?long=true: {"Entries":[{"Name","Type":0 file|1 dir,"Size","Hash","Mode"}]} or
 * "Entries":null (Kubo, empty). Small files come back NODE_UNKNOWN (they may be symlinks). */
int rpcjson_files_ls(const char *body, size_t len, node_entry_fn fn, void *ud, unsigned *skipped);

/* files/stat: {"Hash","Size","Type":"file"|"directory"|"symlink","Mode","Mtime"}. */
int rpcjson_files_stat(const char *body, size_t len, struct node_stat *out, struct cid *cid);

/* The root of an add reply: the Hash of the last line that has one. */
int rpcjson_add_result(const char *body, size_t len, struct cid *out);

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
