/* rpcjson.c - see rpcjson.h. */
#include "config.h"

#include "rpcjson.h"

#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SYMLINK_MAX 4096 /* a symlink target longer than PATH_MAX cannot be a symlink we serve */

bool node_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    if (memchr(name, '\0', len) || memchr(name, '/', len))
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    return true;
}

int rpcjson_u64(const void *json_value, uint64_t *out)
{
    const json_t *v = json_value;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return -EINVAL;
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (*s < '0' || *s > '9')
            return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(s, &end, 10);
        if (errno || *end)
            return -EINVAL;
        *out = x;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d < 0 || d > 1.8e19 || d != (double)(uint64_t)d)
            return -EINVAL;
        *out = (uint64_t)d;
        return 0;
    }
    return -EINVAL;
}

int rpcjson_version(const char *body, size_t len, struct node_version *out)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return -EIO;
    }
    const char *v = json_string_value(json_object_get(j, "Version"));
    if (!v) {
        json_decref(j);
        return -EIO;
    }
    snprintf(out->version, sizeof out->version, "%s", v);
    out->is_kubo = json_object_get(j, "Golang") != NULL && json_object_get(j, "ipfs-core") == NULL;
    json_decref(j);
    return 0;
}

/* Mode: Kubo ls gives a Go FileMode number (0 = absent, bit 31 for directories), files/stat and
 * js-ipfs give an octal string. Only the permission bits matter to us. */
static uint32_t parse_mode(const json_t *m)
{
    if (json_is_integer(m)) {
        json_int_t i = json_integer_value(m);
        return i > 0 ? (uint32_t)(i & 07777) : 0;
    }
    if (json_is_string(m)) {
        char *end;
        unsigned long x = strtoul(json_string_value(m), &end, 8);
        if (*end == '\0')
            return (uint32_t)(x & 07777);
    }
    return 0;
}

static int parse_link(const json_t *l, const struct rpcjson_quirks *q, struct node_entry *e)
{
    const json_t *jname = json_object_get(l, "Name");
    const json_t *jhash = json_object_get(l, "Hash");
    if (!json_is_string(jname) || !json_is_string(jhash))
        return -EINVAL;
    e->name = json_string_value(jname);
    e->name_len = json_string_length(jname);
    if (!node_name_ok(e->name, e->name_len))
        return -EINVAL;
    const char *h = json_string_value(jhash);
    if (cid_parse(h, json_string_length(jhash), &e->cid) < 0)
        return -EINVAL;
    uint64_t type = 0;
    const json_t *jt = json_object_get(l, "Type");
    if (jt && rpcjson_u64(jt, &type) < 0)
        return -EINVAL;
    e->size = 0;
    const json_t *js = json_object_get(l, "Size");
    if (js && rpcjson_u64(js, &e->size) < 0)
        return -EINVAL;
    e->mode = parse_mode(json_object_get(l, "Mode"));
    switch (type) {
    case 1:
    case 5: /* HAMT shard (some versions report it raw) */
        e->kind = NODE_DIR;
        e->size = 0;
        break;
    case 2:
        e->kind = NODE_FILE;
        if (e->cid.codec == CID_CODEC_RAW)
            break;
        if (q && q->symlink_as_file && e->size <= SYMLINK_MAX)
            e->kind = NODE_UNKNOWN;
        break;
    case 4:
        e->kind = NODE_SYMLINK;
        break;
    default:
        /* 0: the node did not fetch the child; anything else is unknown to us. A raw CID
         * can only be a file. */
        e->kind = e->cid.codec == CID_CODEC_RAW ? NODE_FILE : NODE_UNKNOWN;
        break;
    }
    if (e->cid.codec != CID_CODEC_RAW && e->cid.codec != CID_CODEC_DAG_PB)
        e->kind = NODE_UNKNOWN;
    return 0;
}

int rpcjson_ls(const char *body, size_t len, const struct rpcjson_quirks *q, node_entry_fn fn,
               void *ud, unsigned *skipped)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (!j) {
        log_warn("malformed ls reply from the node: %s (line %d)", jerr.text, jerr.line);
        return -EIO;
    }
    int rc = -EIO;
    json_t *objs = json_object_get(j, "Objects");
    if (!json_is_array(objs))
        goto out;
    rc = 0;
    size_t i;
    json_t *obj;
    json_array_foreach(objs, i, obj)
    {
        json_t *links = json_object_get(obj, "Links");
        if (json_is_null(links) || !links)
            continue;
        if (!json_is_array(links)) {
            rc = -EIO;
            goto out;
        }
        size_t k;
        json_t *l;
        json_array_foreach(links, k, l)
        {
            struct node_entry e;
            if (!json_is_object(l) || parse_link(l, q, &e) < 0) {
                const json_t *jn = json_object_get(l, "Name");
                char safe[160];
                log_warn("hiding a directory entry with an invalid name or CID (name \"%s\")",
                         json_is_string(jn) ? log_safe(json_string_value(jn),
                                                       json_string_length(jn), safe, sizeof safe)
                                            : "?");
                if (skipped)
                    (*skipped)++;
                continue;
            }
            rc = fn(ud, &e);
            if (rc < 0)
                goto out;
        }
    }
out:
    json_decref(j);
    return rc;
}

int rpcjson_files_ls(const char *body, size_t len, node_entry_fn fn, void *ud, unsigned *skipped)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return -EIO;
    }
    int rc = 0;
    json_t *entries = json_object_get(j, "Entries");
    if (!entries || json_is_null(entries))
        goto out;
    if (!json_is_array(entries)) {
        rc = -EIO;
        goto out;
    }
    size_t i;
    json_t *l;
    json_array_foreach(entries, i, l)
    {
        struct node_entry e;
        const json_t *jname = json_object_get(l, "Name");
        const json_t *jhash = json_object_get(l, "Hash");
        uint64_t type = 0;
        if (!json_is_string(jname) || !json_is_string(jhash) ||
            !node_name_ok(json_string_value(jname), json_string_length(jname)) ||
            cid_parse(json_string_value(jhash), json_string_length(jhash), &e.cid) < 0 ||
            rpcjson_u64(json_object_get(l, "Type"), &type) < 0 ||
            rpcjson_u64(json_object_get(l, "Size"), &e.size) < 0) {
            if (skipped)
                (*skipped)++;
            continue;
        }
        e.name = json_string_value(jname);
        e.name_len = json_string_length(jname);
        e.mode = parse_mode(json_object_get(l, "Mode"));
        if (type == 1) {
            e.kind = NODE_DIR;
            e.size = 0;
        } else {
            e.kind = e.cid.codec == CID_CODEC_RAW || e.size > SYMLINK_MAX ? NODE_FILE
                                                                          : NODE_UNKNOWN;
        }
        rc = fn(ud, &e);
        if (rc < 0)
            break;
    }
out:
    json_decref(j);
    return rc;
}

int rpcjson_files_stat(const char *body, size_t len, struct node_stat *out, struct cid *cid)
{
    memset(out, 0, sizeof *out);
    json_t *j = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, NULL);
    int rc = -EIO;
    if (!j || !json_is_object(j))
        goto out;
    const json_t *jhash = json_object_get(j, "Hash");
    const char *type = json_string_value(json_object_get(j, "Type"));
    if (!json_is_string(jhash) || !type ||
        cid_parse(json_string_value(jhash), json_string_length(jhash), cid) < 0)
        goto out;
    if (strcmp(type, "directory") == 0) {
        out->kind = NODE_DIR;
    } else if (strcmp(type, "file") == 0) {
        out->kind = NODE_FILE;
        if (rpcjson_u64(json_object_get(j, "Size"), &out->size) < 0)
            goto out;
    } else if (strcmp(type, "symlink") == 0) {
        out->kind = NODE_SYMLINK;
    } else {
        goto out;
    }
    out->mode = parse_mode(json_object_get(j, "Mode"));
    uint64_t mt;
    if (rpcjson_u64(json_object_get(j, "Mtime"), &mt) == 0 && mt <= INT64_MAX) {
        out->mtime = (int64_t)mt;
        out->has_mtime = true;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

struct add_ctx {
    struct cid *out;
    bool found;
    bool bad;
};

static int add_line(void *ud, const char *line, size_t len)
{
    struct add_ctx *a = ud;
    json_t *j = json_loadb(line, len, 0, NULL);
    if (!j) {
        a->bad = true;
        return 0;
    }
    const json_t *h = json_object_get(j, "Hash");
    if (json_is_string(h)) {
        if (cid_parse(json_string_value(h), json_string_length(h), a->out) == 0)
            a->found = true;
        else
            a->bad = true;
    }
    json_decref(j);
    return 0;
}

int rpcjson_add_result(const char *body, size_t len, struct cid *out)
{
    struct add_ctx a = {.out = out};
    struct ndjson nd;
    ndjson_init(&nd, 0);
    int rc = ndjson_feed(&nd, body, len, add_line, &a);
    if (rc == 0)
        rc = ndjson_finish(&nd, add_line, &a);
    ndjson_free(&nd);
    if (rc < 0)
        return rc;
    return a.found && !a.bad ? 0 : -EIO;
}

void ndjson_init(struct ndjson *nd, size_t max_line)
{
    memset(nd, 0, sizeof *nd);
    nd->max_line = max_line ? max_line : (4u << 20);
}

void ndjson_free(struct ndjson *nd)
{
    free(nd->buf);
    nd->buf = NULL;
    nd->len = nd->cap = 0;
}

static int emit(const char *line, size_t len, ndjson_line_fn fn, void *ud)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return 0;
    return fn(ud, line, len);
}

int ndjson_feed(struct ndjson *nd, const char *data, size_t len, ndjson_line_fn fn, void *ud)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (nd->len + take > nd->max_line)
            return -EMSGSIZE;
        if (nl && nd->len == 0) {
            /* Common case: a whole line inside this chunk, no copy. */
            int rc = emit(data, take, fn, ud);
            if (rc < 0)
                return rc;
        } else {
            if (nd->len + take + 1 > nd->cap) {
                size_t cap = nd->cap ? nd->cap : 4096;
                while (cap < nd->len + take + 1)
                    cap *= 2;
                char *p = realloc(nd->buf, cap);
                if (!p)
                    return -ENOMEM;
                nd->buf = p;
                nd->cap = cap;
            }
            memcpy(nd->buf + nd->len, data, take);
            nd->len += take;
            if (nl) {
                int rc = emit(nd->buf, nd->len, fn, ud);
                nd->len = 0;
                if (rc < 0)
                    return rc;
            }
        }
        if (!nl)
            break;
        data = nl + 1;
        len -= take + 1;
    }
    return 0;
}

int ndjson_finish(struct ndjson *nd, ndjson_line_fn fn, void *ud)
{
    int rc = 0;
    if (nd->len > 0)
        rc = emit(nd->buf, nd->len, fn, ud);
    nd->len = 0;
    return rc;
}
