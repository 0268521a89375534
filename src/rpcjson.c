/* rpcjson.c - see rpcjson.h. */
#include "config.h"

#include "rpcjson.h"

#include "log.h"
#include "rpc.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
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

int rpcjson_id(const char *body, size_t len, char *id, size_t idlen)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, &jerr);
    const json_t *ji = json_is_object(j) ? json_object_get(j, "ID") : NULL;
    int rc = -EIO;
    if (json_is_string(ji)) {
        const char *v = json_string_value(ji);
        size_t n = json_string_length(ji), i = 0;
        while (i < n && ((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'z') ||
                         (v[i] >= 'A' && v[i] <= 'Z')))
            i++;
        if (n > 0 && i == n && n < idlen) {
            memcpy(id, v, n);
            id[n] = '\0';
            rc = 0;
        }
    }
    json_decref(j);
    return rc;
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
    const json_t *jv = json_object_get(j, "Version");
    if (!json_is_string(jv)) {
        json_decref(j);
        return -EIO;
    }
    /* The node's words reach the user's terminal and logs: keep the harmless characters. */
    const char *v = json_string_value(jv);
    size_t vl = json_string_length(jv), o = 0;
    for (size_t i = 0; i < vl && o + 1 < sizeof out->version; i++) {
        char ch = v[i];
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            ch == '.' || ch == '-' || ch == '+' || ch == '_')
            out->version[o++] = ch;
        else
            out->version[o++] = '?';
    }
    out->version[o] = '\0';
    out->is_kubo = json_object_get(j, "Golang") != NULL && json_object_get(j, "ipfs-core") == NULL;
    /* MAJOR.MINOR.PATCH, then anything ("-rc1", "-dev"): three numbers or nothing. */
    unsigned num[3] = {0, 0, 0};
    const char *p = out->version;
    int k = 0;
    for (; k < 3; k++) {
        if (*p < '0' || *p > '9')
            break;
        unsigned long x = 0;
        while (*p >= '0' && *p <= '9' && x < 100000)
            x = x * 10 + (unsigned long)(*p++ - '0');
        if (x >= 100000)
            break;
        num[k] = (unsigned)x;
        if (k < 2 && *p++ != '.')
            break;
    }
    if (k == 3 && (*p == '\0' || *p == '-' || *p == '+')) {
        out->parsed = true;
        out->major = num[0];
        out->minor = num[1];
        out->patch = num[2];
    }
    json_decref(j);
    return 0;
}

int rpcjson_version_check(const struct node_version *v, char *why, size_t whylen)
{
    if (!v->is_kubo) {
        snprintf(why, whylen, "the node (version %s) is not Kubo: ipfsfs needs Kubo %s or newer "
                 "(js-ipfs is not supported)", v->version, KUBO_MIN_STR);
        return -EPROTONOSUPPORT;
    }
    if (!v->parsed) {
        snprintf(why, whylen, "cannot read Kubo's version \"%s\": ipfsfs needs Kubo %s or newer",
                 v->version, KUBO_MIN_STR);
        return -EPROTONOSUPPORT;
    }
    uint64_t have = (uint64_t)v->major << 40 | (uint64_t)v->minor << 20 | v->patch;
    uint64_t need = (uint64_t)KUBO_MIN_MAJOR << 40 | (uint64_t)KUBO_MIN_MINOR << 20 | KUBO_MIN_PATCH;
    bool old = have < need;
    if (old) {
        snprintf(why, whylen, "Kubo %s is too old: ipfsfs needs Kubo %s or newer (older versions "
                 "lose the content of multi-block files on files/chmod and files/touch); "
                 "upgrade the node", v->version, KUBO_MIN_STR);
        return -EPROTONOSUPPORT;
    }
    return 0;
}

/* Mode: Kubo's ls gives a Go FileMode number (0 = absent, bit 31 for directories), files/stat
 * an octal string of one. Only the permission bits matter here. */
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

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The number of the len digits at s, or -1 if one is not a digit. */
static int digits(const char *s, unsigned len)
{
    int v = 0;
    for (unsigned i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int rpcjson_rfc3339(const char *t, int64_t *sec, uint32_t *nsec)
{
    static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* "YYYY-MM-DDTHH:MM:SS": fixed places, digits only (no sign, no space). */
    if (!t || strnlen(t, 20) < 19 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') ||
        t[13] != ':' || t[16] != ':')
        return -EINVAL;
    int y = digits(t, 4), mo = digits(t + 5, 2), d = digits(t + 8, 2), h = digits(t + 11, 2),
        mi = digits(t + 14, 2), se = digits(t + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || se < 0 || se > 60)
        return -EINVAL;
    const char *p = t + 19;
    uint32_t frac = 0;
    if (*p == '.') {
        unsigned nd = 0; /* digits of the fraction: nanoseconds are the first 9 */
        for (p++; *p >= '0' && *p <= '9'; p++, nd++)
            if (nd < 9)
                frac = frac * 10 + (uint32_t)(*p - '0');
        if (nd == 0)
            return -EINVAL;
        for (; nd < 9; nd++)
            frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = strnlen(p + 1, 5) == 5 && p[3] == ':' ? digits(p + 1, 2) : -1;
        int om = oh >= 0 ? digits(p + 4, 2) : -1;
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -EINVAL;
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    *sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    *nsec = frac;
    return 0;
}

/* ls's ModTime (RFC 3339, Go's zero time when none is stored) into e's mtime. */
static void parse_modtime(const json_t *j, struct node_entry *e)
{
    const char *t = json_string_value(j);
    int64_t sec;
    uint32_t nsec;
    if (!t || strncmp(t, "0001-01-01T00:00:00", 19) == 0 || rpcjson_rfc3339(t, &sec, &nsec) < 0)
        return;
    e->mtime = sec;
    e->mtime_nsec = nsec;
    e->has_mtime = true;
}

static int parse_link(const json_t *l, struct node_entry *e)
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
    e->has_mtime = false;
    parse_modtime(json_object_get(l, "ModTime"), e);
    switch (type) {
    case 1:
    case 5: /* HAMT shard (some versions report it raw) */
        e->kind = NODE_DIR;
        e->size = 0;
        break;
    case 2:
        e->kind = NODE_FILE;
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

int rpcjson_ls(const char *body, size_t len, node_entry_fn fn, void *ud, unsigned *skipped)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (!j) {
        char safe[200];
        log_warn("malformed ls reply from the node: %s (line %d)",
                 log_safe(jerr.text, strlen(jerr.text), safe, sizeof safe), jerr.line);
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
            struct node_entry e = {0};
            if (!json_is_object(l) || parse_link(l, &e) < 0) {
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

static bool is_ws(char ch);

#define LS_MAX_LINK (64u << 10)

enum {
    LS_OTHER,   /* a container we only skip */
    LS_TOP,     /* a top-level object */
    LS_OBJECTS, /* its "Objects" array */
    LS_OBJECT,  /* an object in that array */
    LS_LINKS,   /* its "Links" array */
    LS_LINK,    /* a link: collected whole */
};

void ls_reader_init(struct ls_reader *r, node_entry_fn fn, void *ud)
{
    memset(r, 0, sizeof *r);
    r->fn = fn;
    r->ud = ud;
}

void ls_reader_free(struct ls_reader *r)
{
    free(r->obj);
    r->obj = NULL;
    r->len = r->cap = 0;
}

static int link_put(struct ls_reader *r, char ch)
{
    if (r->len + 1 > LS_MAX_LINK)
        return -EIO;
    if (r->len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 512;
        char *p = realloc(r->obj, cap);
        if (!p)
            return -ENOMEM;
        r->obj = p;
        r->cap = cap;
    }
    r->obj[r->len++] = ch;
    return 0;
}

/* A whole link object: rpcjson_ls's checks, then fn. */
static int link_done(struct ls_reader *r)
{
    json_t *l = json_loadb(r->obj, r->len, JSON_ALLOW_NUL, NULL);
    if (!l)
        return -EIO;
    struct node_entry e = {0};
    int rc = 0;
    if (parse_link(l, &e) < 0) {
        const json_t *jn = json_object_get(l, "Name");
        char safe[160];
        log_warn("hiding a directory entry with an invalid name or CID (name \"%s\")",
                 json_is_string(jn) ? log_safe(json_string_value(jn), json_string_length(jn),
                                               safe, sizeof safe)
                                    : "?");
        r->skipped++;
    } else {
        rc = r->fn(r->ud, &e);
    }
    json_decref(l);
    return rc;
}

/* The role of a container opened at the current place. */
static unsigned char ls_role(const struct ls_reader *r)
{
    if (r->depth == 0)
        return LS_TOP;
    unsigned char parent = r->role[r->depth - 1];
    if (r->open[r->depth - 1] == '{')
        return r->next_role;
    return parent == LS_OBJECTS ? LS_OBJECT : parent == LS_LINKS ? LS_LINK : LS_OTHER;
}

int ls_reader_feed(struct ls_reader *r, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        bool collecting = r->link_depth && r->depth >= r->link_depth;
        int rc;
        if (collecting && (rc = link_put(r, ch)) < 0)
            return rc;
        if (r->in_str) {
            if (r->esc) {
                r->esc = false;
                if (r->is_key)
                    r->keylen = sizeof r->key; /* an escaped key is none of ours */
            } else if (ch == '\\') {
                r->esc = true;
            } else if (ch == '"') {
                r->in_str = false;
            } else if (r->is_key && r->keylen < sizeof r->key) {
                r->key[r->keylen++] = ch;
            }
            continue;
        }
        if (r->at_value && !is_ws(ch)) {
            /* "Links" holds an array or null, nothing else. */
            if (r->next_role == LS_LINKS && ch != '[' && ch != 'n')
                return -EIO;
            r->at_value = false;
        }
        switch (ch) {
        case '"':
            r->in_str = true;
            r->esc = false;
            r->is_key = r->want_key;
            r->want_key = false;
            r->keylen = 0;
            break;
        case ':':
            if (r->depth > 0 && r->open[r->depth - 1] == '{') {
                unsigned char role = r->role[r->depth - 1];
                bool k_objects = r->keylen == 7 && memcmp(r->key, "Objects", 7) == 0;
                bool k_links = r->keylen == 5 && memcmp(r->key, "Links", 5) == 0;
                r->next_role = role == LS_TOP && k_objects    ? LS_OBJECTS
                               : role == LS_OBJECT && k_links ? LS_LINKS
                                                              : LS_OTHER;
                r->keylen = 0;
                r->at_value = true;
            }
            break;
        case ',':
            r->want_key = r->depth > 0 && r->open[r->depth - 1] == '{';
            r->next_role = LS_OTHER;
            break;
        case '{':
        case '[': {
            if (r->depth >= LS_READER_DEPTH)
                return -EIO;
            unsigned char role = ls_role(r);
            if (role == LS_LINK && ch != '{')
                role = LS_OTHER;
            if (role == LS_TOP && ch != '{')
                return -EIO;
            if ((role == LS_OBJECTS || role == LS_LINKS) && ch != '[')
                role = LS_OTHER;
            if (role == LS_LINK) {
                r->len = 0;
                r->link_depth = r->depth + 1;
                if ((rc = link_put(r, ch)) < 0)
                    return rc;
            }
            if (role == LS_TOP)
                r->tops++;
            else if (role == LS_OBJECTS)
                r->objects++;
            r->open[r->depth] = ch;
            r->role[r->depth] = role;
            r->depth++;
            r->want_key = ch == '{';
            r->next_role = LS_OTHER;
            break;
        }
        case '}':
        case ']':
            if (r->depth == 0 || r->open[r->depth - 1] != (ch == '}' ? '{' : '['))
                return -EIO;
            r->depth--;
            r->want_key = false;
            r->next_role = LS_OTHER;
            if (r->role[r->depth] == LS_LINK) {
                r->link_depth = 0;
                if ((rc = link_done(r)) < 0)
                    return rc;
            }
            break;
        default:
            /* White space and scalars; outside every value only white space. */
            if (r->depth == 0 && !is_ws(ch))
                return -EIO;
            break;
        }
    }
    return 0;
}

int ls_reader_finish(struct ls_reader *r)
{
    return r->depth || r->in_str || r->tops == 0 || r->objects < r->tops ? -EIO : 0;
}

/* One files/ls entry: {"Name","Type","Size","Hash"}. */
static int files_ls_entry(struct files_ls_reader *r, const char *text, size_t len)
{
    json_t *l = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(l)) {
        json_decref(l);
        return -EIO;
    }
    struct node_entry e = {0};
    const json_t *jname = json_object_get(l, "Name");
    const json_t *jhash = json_object_get(l, "Hash");
    uint64_t type = 0;
    int rc = 0;
    if (!json_is_string(jname) || !json_is_string(jhash) ||
        !node_name_ok(json_string_value(jname), json_string_length(jname)) ||
        cid_parse(json_string_value(jhash), json_string_length(jhash), &e.cid) < 0 ||
        rpcjson_u64(json_object_get(l, "Type"), &type) < 0 ||
        rpcjson_u64(json_object_get(l, "Size"), &e.size) < 0) {
        r->skipped++;
        goto out;
    }
    e.name = json_string_value(jname);
    e.name_len = json_string_length(jname);
    e.mode = parse_mode(json_object_get(l, "Mode"));
    if (type == 1) {
        e.kind = NODE_DIR;
        e.size = 0;
    } else {
        e.kind = e.cid.codec == CID_CODEC_RAW || e.size > SYMLINK_MAX ? NODE_FILE : NODE_UNKNOWN;
    }
    rc = r->fn(r->ud, &e);
out:
    json_decref(l);
    return rc;
}

#define FILES_LS_MAX_ENTRY (64u << 10)

enum {
    FL_START,   /* before the top-level '{' */
    FL_KEY,     /* before the key's opening quote */
    FL_KEYSTR,  /* inside the key */
    FL_COLON,   /* after the key */
    FL_VALUE,   /* before the value of "Entries" */
    FL_NULL,    /* inside "null" */
    FL_ELEM,    /* before an entry or ']' */
    FL_ENTRY,   /* inside an entry */
    FL_SEP,     /* after an entry: ',' or ']' */
    FL_CLOSE,   /* before the top-level '}' */
    FL_END,     /* only white space may follow */
};

void files_ls_init(struct files_ls_reader *r, uint64_t max_entries, node_entry_fn fn, void *ud)
{
    memset(r, 0, sizeof *r);
    r->max_entries = max_entries ? max_entries : UINT64_MAX;
    r->fn = fn;
    r->ud = ud;
}

void files_ls_free(struct files_ls_reader *r)
{
    free(r->obj);
    r->obj = NULL;
    r->len = r->cap = 0;
}

static int entry_put(struct files_ls_reader *r, char ch)
{
    if (r->len + 1 > FILES_LS_MAX_ENTRY)
        return -EIO;
    if (r->len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        char *p = realloc(r->obj, cap);
        if (!p)
            return -ENOMEM;
        r->obj = p;
        r->cap = cap;
    }
    r->obj[r->len++] = ch;
    return 0;
}

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

int files_ls_feed(struct files_ls_reader *r, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        int rc;
        if (r->state != FL_KEYSTR && r->state != FL_NULL && r->state != FL_ENTRY && is_ws(ch))
            continue;
        switch (r->state) {
        case FL_START:
            if (ch != '{')
                return -EIO;
            r->state = FL_KEY;
            break;
        case FL_KEY:
            if (ch != '"')
                return -EIO;
            r->keylen = 0;
            r->state = FL_KEYSTR;
            break;
        case FL_KEYSTR:
            if (ch == '"') {
                r->state = FL_COLON;
            } else {
                if (ch == '\\' || r->keylen + 1 >= sizeof r->key)
                    return -EIO;
                r->key[r->keylen++] = ch;
            }
            break;
        case FL_COLON:
            /* Kubo's reply has the one key. */
            if (ch != ':' || r->keylen != 7 || memcmp(r->key, "Entries", 7) != 0)
                return -EIO;
            r->state = FL_VALUE;
            break;
        case FL_VALUE:
            if (ch == '[') {
                r->keylen = 0;
                r->state = FL_ELEM;
            } else if (ch == 'n') {
                r->keylen = 1;
                r->state = FL_NULL;
            } else {
                return -EIO;
            }
            break;
        case FL_NULL:
            if (ch != "null"[r->keylen])
                return -EIO;
            if (++r->keylen == 4)
                r->state = FL_CLOSE;
            break;
        case FL_SEP:
            if (ch == ']') {
                r->state = FL_CLOSE;
                break;
            }
            if (ch != ',')
                return -EIO;
            r->keylen = 1; /* an entry must follow the comma, not ']' */
            r->state = FL_ELEM;
            break;
        case FL_ELEM:
            if (ch == ']' && r->keylen != 1) {
                r->state = FL_CLOSE;
                break;
            }
            if (ch != '{')
                return -EIO;
            r->len = 0;
            r->depth = 1;
            r->in_str = r->esc = false;
            if ((rc = entry_put(r, ch)) < 0)
                return rc;
            r->state = FL_ENTRY;
            break;
        case FL_ENTRY:
            if ((rc = entry_put(r, ch)) < 0)
                return rc;
            if (r->in_str) {
                if (r->esc)
                    r->esc = false;
                else if (ch == '\\')
                    r->esc = true;
                else if (ch == '"')
                    r->in_str = false;
                break;
            }
            if (ch == '"') {
                r->in_str = true;
            } else if (ch == '{' || ch == '[') {
                if (++r->depth > 32)
                    return -EIO;
            } else if (ch == '}' || ch == ']') {
                if (--r->depth == 0) {
                    if (++r->entries > r->max_entries)
                        return -EFBIG;
                    if ((rc = files_ls_entry(r, r->obj, r->len)) < 0)
                        return rc;
                    r->len = 0;
                    r->state = FL_SEP;
                }
            }
            break;
        case FL_CLOSE:
            if (ch != '}')
                return -EIO;
            r->state = FL_END;
            break;
        default: /* FL_END: only white space may follow */
            return -EIO;
        }
    }
    return 0;
}

int files_ls_finish(struct files_ls_reader *r)
{
    return r->state == FL_END ? 0 : -EIO;
}

int rpcjson_files_ls(const char *body, size_t len, node_entry_fn fn, void *ud, unsigned *skipped)
{
    struct files_ls_reader r;
    files_ls_init(&r, 0, fn, ud);
    int rc = files_ls_feed(&r, body, len);
    if (rc == 0)
        rc = files_ls_finish(&r);
    if (skipped)
        *skipped += r.skipped;
    files_ls_free(&r);
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
    /* Kubo shows a Go FileMode: ModeSymlink (1 << 27) marks a symlink it calls a "file". */
    const char *m = json_string_value(json_object_get(j, "Mode"));
    if (m && out->kind == NODE_FILE) {
        char *end;
        unsigned long long x = strtoull(m, &end, 8);
        if (*end == '\0' && (x & (1ull << 27))) {
            out->kind = NODE_SYMLINK;
            out->size = 0;
        }
    }
    uint64_t mt;
    if (rpcjson_u64(json_object_get(j, "Mtime"), &mt) == 0 && mt <= INT64_MAX) {
        out->mtime = (int64_t)mt;
        out->has_mtime = true;
        if (rpcjson_u64(json_object_get(j, "MtimeNsecs"), &mt) == 0 && mt <= 999999999u)
            out->mtime_nsec = (uint32_t)mt;
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

int rpcjson_repo_stat(const char *body, size_t len, uint64_t *repo_size, uint64_t *storage_max)
{
    json_t *j = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, NULL);
    int rc = json_is_object(j) &&
                     rpcjson_u64(json_object_get(j, "RepoSize"), repo_size) == 0 &&
                     rpcjson_u64(json_object_get(j, "StorageMax"), storage_max) == 0
                 ? 0
                 : -EIO;
    json_decref(j);
    return rc;
}

int rpcjson_rm_error(const char *body, size_t len, char *msg, size_t msglen)
{
    int found = -EIO;
    if (msglen)
        msg[0] = '\0';
    while (len > 0) {
        const char *nl = memchr(body, '\n', len);
        size_t n = nl ? (size_t)(nl - body) : len;
        json_t *j = json_loadb(body, n, JSON_DECODE_ANY, NULL);
        if (json_is_string(j)) {
            /* "<path>: <message>": the path may hold ": " too, the message is what follows
             * the last one. */
            const char *s = json_string_value(j);
            size_t sl = json_string_length(j);
            const char *m = s;
            for (size_t i = 0; i + 1 < sl; i++)
                if (s[i] == ':' && s[i + 1] == ' ')
                    m = s + i + 2;
            int e = rpc_classify_error(m);
            if (msglen && !msg[0])
                log_safe(m, sl - (size_t)(m - s), msg, msglen);
            if (e != -EIO) {
                if (msglen)
                    log_safe(m, sl - (size_t)(m - s), msg, msglen);
                found = e;
                json_decref(j);
                break;
            }
        }
        json_decref(j);
        if (!nl)
            break;
        body = nl + 1;
        len -= n + 1;
    }
    return found;
}

/* A setting's value as text for a message ("1024", "\"block\""), or "" for null. */
static void setting_text(json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
    else if (json_is_null(v) || !v)
        buf[0] = '\0';
    else
        snprintf(buf, len, "(a %s)", json_is_object(v) ? "map" : "value");
}

static void add_setting(char *list, size_t len, const char *name, const char *value)
{
    size_t n = strlen(list);
    if (n < len)
        snprintf(list + n, len - n, "%sImport.%s=%s", n ? ", " : "", name, value);
}

/* Import setting name of v: true with *out when it is a whole number in min..max; a value
 * that is neither that nor null is named in refused ("Import.NAME=VALUE"). */
static bool int_setting(json_t *v, const char *name, json_int_t min, json_int_t max,
                        json_int_t *out, char *refused, size_t len)
{
    json_t *x = json_object_get(v, name);
    if (json_is_integer(x) && json_integer_value(x) >= min && json_integer_value(x) <= max) {
        *out = json_integer_value(x);
        return true;
    }
    if (x && !json_is_null(x)) {
        char text[64];
        setting_text(x, text, sizeof text);
        snprintf(refused, len, "Import.%s=%s", name, text);
    }
    return false;
}

int rpcjson_import_config(const char *body, size_t len, struct import_config *out, char *why,
                          size_t whylen)
{
    memset(out, 0, sizeof *out);
    out->cid_version = -1;
    out->raw_leaves = -1;
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *v = json_object_get(j, "Value");
    if (!json_is_object(v)) {
        snprintf(why, whylen, "config Import: no settings in the answer");
        json_decref(j);
        return -EPROTO;
    }
    char text[64];
    json_int_t n;
    if (int_setting(v, "CidVersion", 0, 1, &n, out->refused, sizeof out->refused))
        out->cid_version = (int)n;
    json_t *x = json_object_get(v, "UnixFSRawLeaves");
    if (json_is_boolean(x))
        out->raw_leaves = json_is_true(x);
    if (int_setting(v, "UnixFSFileMaxLinks", 2, 65536, &n, out->refused, sizeof out->refused))
        out->file_max_links = (unsigned)n;
    x = json_object_get(v, "UnixFSChunker");
    if (json_is_string(x))
        snprintf(out->chunker, sizeof out->chunker, "%s", json_string_value(x));
    /* Every file's CID: only the defaults are followed (the chunker's kind is checked where
     * the import settings are made: import_opts_from). */
    static const struct {
        const char *name, *ok; /* ok: the one value that is the default ("" : none) */
        bool every;            /* changes every file's CID (else only large ones) */
    } fixed[] = {
        {"HashFunction", "sha2-256", true},
        {"UnixFSDAGLayout", "balanced", true},
        {"UnixFSPBNodeFieldOrder", "links-first", true},
        {"UnixFSDirectoryMaxLinks", "0", false},
        {"UnixFSHAMTDirectoryMaxFanout", "256", false},
        {"UnixFSHAMTDirectorySizeThreshold", "256KiB", false},
        {"UnixFSHAMTDirectorySizeEstimation", "links", false},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        x = json_object_get(v, fixed[i].name);
        setting_text(x, text, sizeof text);
        if (!text[0] || strcmp(text, fixed[i].ok) == 0)
            continue;
        if (strcmp(fixed[i].name, "UnixFSHAMTDirectorySizeEstimation") == 0 &&
            strcmp(text, "block") == 0) {
            out->hamt_block = true; /* followed (node_store_config.hamt_block_est) */
            continue;
        }
        if (fixed[i].every) {
            if (!out->refused[0])
                snprintf(out->refused, sizeof out->refused, "Import.%s=%s", fixed[i].name,
                         text);
        } else {
            add_setting(out->differs, sizeof out->differs, fixed[i].name, text);
        }
    }
    json_decref(j);
    return 0;
}
