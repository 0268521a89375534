/* fuzz_ipns.c - IPNS records: a gateway may send anything as a record.
 *
 * Input: one byte choosing the name (an Ed25519 name whose key is inlined, or an RSA name whose
 * key must come in the record), then the record. Properties: only the documented errors; an
 * accepted record has a NUL-terminated value of at most IPNS_MAX_VALUE bytes without NUL inside,
 * an EOL after "now", and a lifetime within the cap; and the same input verified twice gives
 * the same answer. The RFC 3339 parser gets the input too, and so does the name parser (a name
 * in a path is anything): only 0 or -EINVAL, and an accepted name is a libp2p-key CIDv1 whose
 * base36 spelling parses back to it.
 */
#include "config.h"

#include "cid.h"
#include "fuzz.h"
#include "ipns.h"

#include <errno.h>
#include <string.h>

static const char *const names[] = {
    "k51qzi5uqu5dk593kyj08uzo5s2uy858sv1hwxupcek5olmry0a719wlsktogy",
    "k2k4r8krvjj1qlrcglszc20tjq6a9wiyn3wz0iciome3lqbgzi4d3cde",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ns;
    int tr = ipns_parse_time((const char *)data, size, &ns);
    FUZZ_CHECK(tr == 0 || tr == -EINVAL, "parse_time returned %d", tr);
    struct cid key, back;
    int nr = ipns_name_parse((const char *)data, size, &key);
    FUZZ_CHECK(nr == 0 || nr == -EINVAL, "name_parse returned %d", nr);
    if (nr == 0) {
        char spelled[CID_STR_MAX];
        FUZZ_CHECK(key.version == 1 && key.codec == CID_CODEC_LIBP2P_KEY, "not a key: %u %lu",
                   key.version, (unsigned long)key.codec);
        int fl = ipns_name_format(&key, spelled, sizeof spelled);
        FUZZ_CHECK(fl > 0, "name_format returned %d", fl);
        FUZZ_CHECK(fl > 0 && ipns_name_parse(spelled, (size_t)fl, &back) == 0 &&
                       cid_equal(&key, &back),
                   "the base36 spelling %s does not parse back", spelled);
    }
    if (size < 1)
        return 0;
    struct cid name;
    const char *s = names[data[0] % 2];
    FUZZ_CHECK(cid_parse(s, strlen(s), &name) == 0, "the fixed name does not parse");
    /* Before the fixtures' validity ends (2026-12-05T23:24Z): a recorded record verifies. */
    int64_t now = 1796500000LL * 1000000000LL;
    struct ipns_record r, r2;
    int rc = ipns_verify(&name, data + 1, size - 1, now, &r);
    FUZZ_CHECK(rc == 0 || rc == -EFBIG || rc == -EBADMSG || rc == -EKEYREJECTED ||
                   rc == -ENOTSUP || rc == -ETIME || rc == -ENOMEM,
               "undocumented error %d", rc);
    int rc2 = ipns_verify(&name, data + 1, size - 1, now, &r2);
    FUZZ_CHECK(rc == rc2, "two answers for one input: %d, %d", rc, rc2);
    if (rc == 0) {
        size_t n = strnlen(r.value, sizeof r.value);
        FUZZ_CHECK(n > 0 && n <= IPNS_MAX_VALUE, "value length %zu", n);
        FUZZ_CHECK(r.eol_ns > now, "accepted an expired record");
        FUZZ_CHECK(strcmp(r.value, r2.value) == 0 && r.sequence == r2.sequence,
                   "two records for one input");
        uint64_t life = ipns_lifetime_ns(&r, now, 60000000000ULL);
        FUZZ_CHECK(life <= 60000000000ULL, "lifetime over the cap");
    }
    return 0;
}
