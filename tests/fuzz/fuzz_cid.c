/* fuzz_cid.c - cid_parse, cid_format, cid_from_bytes, cid_to_bytes and varints.
 *
 * The input is tried three ways: as a CID string, as a binary CID, as a varint. Properties:
 *   - a parsed CID formats, and the formatted string parses back to an equal CID;
 *   - formatting is canonical: a CIDv0 "Qm..." string or a lower-case base32 "b..." CIDv1 that
 *     parses formats back to exactly the input (each CID has one string in those bases);
 *   - cid_to_bytes/cid_from_bytes round-trip, and a binary CID that parses re-encodes to
 *     exactly the input bytes (no second encoding of the same CID is accepted);
 *   - cid_hash agrees with cid_equal;
 *   - a varint that decodes re-encodes to exactly the bytes consumed.
 */
#include "config.h"

#include "cid.h"
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

static void check_roundtrip(const struct cid *c, const char *what)
{
    char s[CID_STR_MAX];
    uint8_t bin[CID_MAX_MH + 16];
    struct cid c2, c3;

    int n = cid_format(c, s, sizeof s);
    FUZZ_CHECK(n > 0, "%s: cid_format of a parsed CID failed (%d)", what, n);
    FUZZ_CHECK((size_t)n == strlen(s), "%s: cid_format length %d != strlen %zu", what, n,
               strlen(s));
    FUZZ_CHECK(cid_parse(s, (size_t)n, &c2) == 0, "%s: formatted CID '%s' does not parse", what, s);
    FUZZ_CHECK(cid_equal(c, &c2), "%s: '%s' parses to another CID", what, s);
    FUZZ_CHECK(cid_hash(c) == cid_hash(&c2), "%s: equal CIDs hash differently", what);

    int b = cid_to_bytes(c, bin, sizeof bin);
    FUZZ_CHECK(b > 0, "%s: cid_to_bytes failed (%d)", what, b);
    FUZZ_CHECK(cid_from_bytes(bin, (size_t)b, &c3) == 0, "%s: its binary form does not parse",
               what);
    FUZZ_CHECK(cid_equal(c, &c3), "%s: binary round trip gives another CID", what);

    /* Every shorter buffer must be refused, never overrun. */
    for (size_t small = 0; small < (size_t)n + 1; small += 1 + small / 4) {
        char *t = malloc(small ? small : 1);
        if (!t)
            return;
        int r = cid_format(c, small ? t : NULL, small);
        FUZZ_CHECK(r < 0, "%s: cid_format fitted %d characters in %zu bytes", what, n, small);
        free(t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cid c;
    const char *s = (const char *)data;

    /* 1. As a string. */
    if (cid_parse(s, size, &c) == 0) {
        char out[CID_STR_MAX];
        check_roundtrip(&c, "string");
        int n = cid_format(&c, out, sizeof out);
        bool canonical_in = (size == 46 && s[0] == 'Q' && s[1] == 'm') ||
                            (size > 1 && s[0] == 'b' && c.version == 1);
        /* The bits after the last whole byte are ignored (as Kubo does): they sit in the last
         * character, which may differ; nothing else may, but the letter case (base32 is read
         * in either case, as Kubo reads it, and written in lower case). */
        bool same = (size_t)n == size;
        for (size_t i = 0; same && i + 1 < size; i++)
            same = out[i] == (s[0] == 'b' && s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
        if (canonical_in)
            FUZZ_CHECK(same, "'%.*s' parses but formats as '%s' (two strings for one CID)",
                       (int)size, s, out);
        FUZZ_CHECK(c.version <= 1, "version %u", c.version);
        FUZZ_CHECK(c.mh_len > 0 && c.mh_len <= CID_MAX_MH, "mh_len %zu", c.mh_len);
    }

    /* 2. As a binary CID (dag-pb link hashes are these). */
    if (cid_from_bytes(data, size, &c) == 0) {
        uint8_t bin[CID_MAX_MH + 16];
        check_roundtrip(&c, "binary");
        int b = cid_to_bytes(&c, bin, sizeof bin);
        FUZZ_CHECK((size_t)b == size && memcmp(bin, data, size) == 0,
                   "binary CID of %zu bytes re-encodes to %d other bytes", size, b);
    }

    /* 3. As a varint. */
    uint64_t v;
    size_t used = varint_decode(data, size, &v);
    if (used > 0) {
        uint8_t enc[10];
        size_t m = varint_encode(v, enc);
        FUZZ_CHECK(m == used && memcmp(enc, data, m) == 0,
                   "varint of %zu bytes re-encodes to %zu other bytes", used, m);
    }
    return 0;
}
